"""Lesson 02 solutions."""


def ex1_fixed_upload(api, sample):
    """The refused request used the wrong form fields: the API wants `file` and `title`."""
    with open(sample, "rb") as f:
        return api.post("/vod/upload", data={"title": "lesson 02: my fixed upload"},
                        files={"file": (sample.name, f, "video/mp4")})


PREDICTIONS = {
    "metadata of an unknown VOD id": 404,
    "start a stream without the API key": 401,
    "end a stream that does not exist": 404,
}
