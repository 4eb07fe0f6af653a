"""Generated from proto/ by `make generate`; never edit by hand."""
