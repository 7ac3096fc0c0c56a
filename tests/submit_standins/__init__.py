"""Local stand-ins of the Argo Server and KFP APIs for `dmlc submit|status|logs` tests (see server.py)."""
