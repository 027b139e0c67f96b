"""Protection urls: instances (filled by its area)."""

urlpatterns: list = []
