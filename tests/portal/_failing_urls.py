"""A URL conf with one view that fails, to see the 500 page as a person would."""

from django.urls import include, path


def fail(request):
    return 1 / 0


urlpatterns = [path("fail/", fail), path("", include("portal.urls"))]
