from django.urls import path

from labs import views

app_name = "labs"

urlpatterns = [
    path("", views.lab_list, name="lab_list"),
    path("runs/<uuid:run_id>/", views.run_page, name="run_page"),
    path("runs/<uuid:run_id>/solve/<slug:step>/", views.solve, name="solve"),
    path("runs/<uuid:run_id>/reset/", views.reset_for_trainee, name="reset_for_trainee"),
    path("<slug:slug>/", views.lab_page, name="lab_page"),
    path("<slug:slug>/start/", views.start, name="start"),
    path("<slug:slug>/check/", views.check, name="check"),
    path("<slug:slug>/hint/<slug:step>/", views.hint, name="hint"),
    path("<slug:slug>/reset/", views.reset, name="reset"),
    path("<slug:slug>/role-play/", views.role_play, name="role_play"),
]
