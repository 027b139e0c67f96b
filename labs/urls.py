from django.urls import path

from labs import class_views, views

app_name = "labs"

urlpatterns = [
    path("", views.lab_list, name="lab_list"),
    path("runs/<uuid:run_id>/", views.run_page, name="run_page"),
    path("runs/<uuid:run_id>/solve/<slug:step>/", views.solve, name="solve"),
    path("runs/<uuid:run_id>/reset/", views.reset_for_trainee, name="reset_for_trainee"),
    # classes (a Lab Instructor's), before the lab pages: "classes" is not a lab
    path("classes/", class_views.class_list, name="class_list"),
    path("classes/new/", class_views.class_create, name="class_create"),
    path("classes/<slug:class_slug>/", class_views.class_page, name="class_page"),
    path("classes/<slug:class_slug>/export.csv", class_views.class_export, name="class_export"),
    path("classes/<slug:class_slug>/seats/<int:number>/reset/", class_views.class_reset_seat, name="class_reset_seat"),
    path("classes/<slug:class_slug>/pairs/<int:pair>/reset/", class_views.class_reset_pair, name="class_reset_pair"),
    path("classes/<slug:class_slug>/reset/", class_views.class_reset, name="class_reset"),
    path("classes/<slug:class_slug>/close/", class_views.class_close, name="class_close"),
    path("classes/<slug:class_slug>/clock/", class_views.class_clock, name="class_clock"),
    path("<slug:slug>/", views.lab_page, name="lab_page"),
    path("<slug:slug>/start/", views.start, name="start"),
    path("<slug:slug>/check/", views.check, name="check"),
    path("<slug:slug>/hint/<slug:step>/", views.hint, name="hint"),
    path("<slug:slug>/reset/", views.reset, name="reset"),
    path("<slug:slug>/role-play/", views.role_play, name="role_play"),
]
