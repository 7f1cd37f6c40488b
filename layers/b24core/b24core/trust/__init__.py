"""Who may change what the app trusts: administrators' tokens change trust, users get sessions."""
