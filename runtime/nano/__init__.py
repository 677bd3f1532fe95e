"""gpt-oss-nano: a tiny trained gpt-oss model that ships with the package."""
