"""Console scripts. One thin module per script; each only parses arguments and calls the library."""
