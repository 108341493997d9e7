"""pmm-runtime: what every PMM service process runs on. No domain knowledge lives here."""
