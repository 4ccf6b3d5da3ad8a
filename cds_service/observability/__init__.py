"""Operating the service: JSON logs with a privacy guard, security headers, health and metrics."""
