"""DoctorAI Workstation core: imaging, inference, audit, security, sync and config, without Qt."""

__version__ = "0.1.0"
