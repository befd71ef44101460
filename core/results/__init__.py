"""AI results and the radiologist's decisions, in the encrypted database."""
