"""The data core every process shares: settings, session, models, migrations, seed, read queries."""
