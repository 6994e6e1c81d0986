"""What every process shares and that is not the database: how numbers read in each language."""
