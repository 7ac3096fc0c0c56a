"""dmlc targets: plug-ins behind the contract in dmlc/targets.py."""
