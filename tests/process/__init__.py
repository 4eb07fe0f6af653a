from pathlib import Path

#: The Go tools `make test` installs and builds (grpcurl, the REST sidecar).
GO_BIN = Path(__file__).resolve().parents[2] / "target" / "go-bin"
