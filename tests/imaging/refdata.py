"""Real reference files from the shared DICOM set, by role, and small helpers."""

from __future__ import annotations

import warnings
from pathlib import Path

from core.imaging.header import read_header
from core.imaging.model import Instance

CT_TS = "cornerstonejs__cornerstone3D/packages/dicomImageLoader/testImages"
CT_STACK = "pyvista__vtk-data/Data/DICOM_Stack"
WG04 = "pydicom__pydicom-data/data_store/data"
PYDICOM_TF = "pydicom__pydicom/src/pydicom/data/test_files"
ENHANCED_MR = "neurolabusc__dcm_qa_enh/In/Philips/IM_0027_fMAP.dcm"
SIGNED_12 = "neurolabusc__dcm_qa_12bit/In/12bitSigned_0x0F0F.dcm"


def instance(path: Path) -> Instance:
    """An Instance for one file (UIDs not required, as ``doctorai render`` does)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_header(str(path), require_uids=False).instance
