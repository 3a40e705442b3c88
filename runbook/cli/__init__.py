"""The front ends: invoke collections and the terminal renderer, the only code that prints."""
