"""Knowledge of particular servers: Apache vhosts, compose projects and Traefik, the mail server."""
