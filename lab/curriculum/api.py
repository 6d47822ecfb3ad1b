"""The JSON API of lessons and progress."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from .selectors import LessonNotFound, lesson_get, lesson_list, progress_for
from .services import ProgressInvalid, progress_record


class ProgressInput(serializers.Serializer):
    step = serializers.CharField(max_length=50, required=False)
    checkpoint = serializers.CharField(max_length=50, required=False)
    answer = serializers.IntegerField(required=False, min_value=0, max_value=50)

    def validate(self, data):
        if not data.get("step") and not data.get("checkpoint"):
            raise serializers.ValidationError({"step": ["give a step or a checkpoint"]})
        return data


def _lesson(slug: str):
    try:
        return lesson_get(slug=slug)
    except LessonNotFound:
        raise NotFound(f"No lesson {slug!r}.") from None


class LessonListApi(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request):
        return Response([lesson.as_dict() for lesson in lesson_list()])


class LessonDetailApi(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request, slug: str):
        lesson = _lesson(slug)
        return Response(
            {**lesson.as_dict(), "progress": progress_for(user=request.user, lesson=lesson)}
        )


class ProgressApi(APIView):
    @extend_schema(request=ProgressInput, responses={200: dict})
    def post(self, request, slug: str):
        lesson = _lesson(slug)
        data = ProgressInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = request.user  # IsAuthenticatedOrReadOnly: anonymous writes are a 403
        try:
            outcome = progress_record(user=user, lesson=lesson, **data.validated_data)
        except ProgressInvalid as invalid:
            raise ValidationError(invalid.errors) from None
        return Response({**outcome, "progress": progress_for(user=user, lesson=lesson)})
