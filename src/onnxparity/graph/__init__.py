"""Graph facts: what an exported ONNX file says before anything runs — its files and nodes, the
constants its graph branches on (:mod:`.boundaries`, :mod:`.branches`), the values each input
may take (:mod:`.domains`), and what an input's values make an op allocate (:mod:`.resources`)."""
