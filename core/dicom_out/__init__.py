"""The DICOM objects a read produces (TID 2000 report SR, KOS, TID 1500 measurements, GSPS)
and a reader for those objects made by any system; built with highdicom."""
