"""PMM console: the web application for the people who do the work."""
