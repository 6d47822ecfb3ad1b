from django import forms

from .models import ScenarioAction


class CohortForm(forms.Form):
    name = forms.CharField(max_length=120, label="Cohort name")


class JoinForm(forms.Form):
    code = forms.CharField(max_length=20, label="Join code")


class ScenarioForm(forms.Form):
    service = forms.CharField(max_length=60)
    action = forms.ChoiceField(choices=ScenarioAction.choices)
    delay_ms = forms.FloatField(required=False, label="Delay (ms)")
    error_rate = forms.FloatField(required=False, label="Share of calls that fail (0-1)")
    duration_s = forms.IntegerField(initial=120, label="For (seconds)")
