WHO = "function"
