from sotong.config.loader import ConfigError, load_hospital, load_hospital_file
from sotong.config.schema import HospitalConfig

__all__ = ["ConfigError", "HospitalConfig", "load_hospital", "load_hospital_file"]
