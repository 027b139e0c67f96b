"""Protection urls: jobs (filled by its area)."""

urlpatterns: list = []
