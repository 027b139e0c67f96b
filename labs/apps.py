from django.apps import AppConfig


class LabsConfig(AppConfig):
    name = "labs"
    verbose_name = "Training labs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from portal.pages import register_home_panel

        from labs import catalogue, signals, tasks  # noqa: F401

        catalogue.load_builtin_labs()
        signals.connect()
        register_home_panel("labs/home_panel.html", "labs.views.home_panel_context")
