"""What every process shares and that is not the database: settings (settings.py), logging
(logs.py), how numbers read in each language (numbers.py)."""
