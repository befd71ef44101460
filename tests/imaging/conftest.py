"""Fixtures of tests/imaging: locations in the shared DICOM set."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.imaging.refdata import CT_STACK, CT_TS


@pytest.fixture
def ct_stack(dicom_data: Path) -> Path:
    return dicom_data / CT_STACK


@pytest.fixture
def ct_ts(dicom_data: Path) -> Path:
    return dicom_data / CT_TS
