"""Grounded question answering: route log questions to exact aggregates, retrieve the rest."""
