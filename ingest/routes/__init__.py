"""One module per resource; each is a thin caller of the service layer."""
