"""Protection urls: policies (filled by its area)."""

urlpatterns: list = []
