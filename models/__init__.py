"""The model layer: network definition (torch), on-disk format and runtime (onnxruntime).

Importing this package imports neither torch nor onnxruntime; each submodule pulls in
only what it needs, so the serving path stays torch-free.
"""
