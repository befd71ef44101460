"""PACS interoperability: DICOMweb query/retrieve into a local cache, AI results back as DICOM.

client (QIDO-RS / WADO-RS / STOW-RS), retrieve (progressive, cached), cache (LRU, purge),
nodes (settings + keyring secrets), export (SR TID 1500, SEG, STOW), audit (the sink protocol).
"""
