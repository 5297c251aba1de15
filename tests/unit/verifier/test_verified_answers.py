"""The encoded answers of verified tokens, made once per token object and never another's."""

from __future__ import annotations

import json

from verifier.hotpath import VerifiedAnswers
from verifier.service import Verdict
from verifier.verification import VerifiedToken


def _token(user: str) -> VerifiedToken:
    return VerifiedToken(user_id=user, is_admin=False, provider="jwt",
                         claims={"userId": user}, issued_at=1.0, expires_at=2.0, jti=None,
                         kid="k", fingerprint=user)


def test_a_repeated_token_is_answered_with_the_bytes_made_the_first_time() -> None:
    answers = VerifiedAnswers(size=2)
    token = _token("a")
    first = answers.body(Verdict(token, True))
    assert answers.body(Verdict(token, True)) is first
    assert json.loads(first)["userId"] == "a"
    # open mode's unchecked answer is another answer
    assert json.loads(answers.body(Verdict(token, False)))["revocationChecked"] is False


def test_a_token_never_gets_the_answer_of_another() -> None:
    answers = VerifiedAnswers(size=1000)
    for user in ("a", "b", "c") * 50:
        # new objects each time: ids are recycled as the old ones are freed
        assert json.loads(answers.body(Verdict(_token(user), True)))["userId"] == user


def test_a_full_table_starts_again() -> None:
    answers = VerifiedAnswers(size=3)
    kept = [_token(str(number)) for number in range(10)]
    for token in kept:
        answers.body(Verdict(token, True))
    assert len(answers._answers) <= 3
