"""The supervisor's desk pages: reviewing recordings and running the day (import,
distribution, campaigns, specialists and seats), on the web stack of callcenter.pages."""
