"""Forms of the pages: sign-up and a quiz answer."""

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password

User = get_user_model()


class SignUpForm(forms.Form):
    username = forms.RegexField(
        regex=r"^[\w.@+-]{3,40}$",
        max_length=40,
        help_text="3 to 40 letters, digits or . @ + - _",
        error_messages={"invalid": "Use 3 to 40 letters, digits or . @ + - _"},
    )
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if username.lower().startswith("guest-"):
            raise forms.ValidationError("Names starting with guest- are kept for guests.")
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("That name is taken.")
        return username

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password"):
            try:
                validate_password(cleaned["password"], User(username=cleaned.get("username", "")))
            except forms.ValidationError as error:
                self.add_error("password", error)
        return cleaned


class QuizAnswerForm(forms.Form):
    answer = forms.IntegerField(min_value=0, error_messages={"required": "Pick an answer."})
