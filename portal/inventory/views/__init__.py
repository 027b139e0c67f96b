"""Inventory pages, one module per kind of resource (`storage`, `elastic_san`, `postgresql`) over the
shapes they share (`generic`).

Thin: reads start from `visible` / `get_visible_or_404` (objects a principal cannot read are 404),
changes go through the services (a refusal becomes the explained 403 page).
"""
