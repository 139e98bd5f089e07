"""Labeled datasets on disk: YOLO, COCO and Pascal VOC readers and writers over one small in-memory
form (``labels``), the stable train/val/test split of a frame (``split``) and the manifest with its
digest (``manifest``). No web, no database: the server's import and export wire these to the store.
"""
