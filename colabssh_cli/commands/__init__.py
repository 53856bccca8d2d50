"""One module per command; each is a thin layer over a typed core."""
