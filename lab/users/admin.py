from django.contrib import admin

from .models import Cohort, Profile

admin.site.register(Profile)
admin.site.register(Cohort, filter_horizontal=("instructors", "learners"))
