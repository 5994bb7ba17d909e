"""Templates: every language and message renders; sandbox, autoescape, strict variables, fallback."""

from __future__ import annotations

import pytest

from winback_ml.data.contract import CANCEL_REASONS, OFFER_TYPES, SEGMENTS
from winback_ml.dispatch.sequences import load_sequences
from winback_ml.dispatch.templates import LANGUAGES, RenderError, TemplateRenderer, example_context

R = TemplateRenderer()
MESSAGES = [(s.channel, s.template) for seq in load_sequences().sequences for s in seq.steps]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_message_renders_in_every_language_offer_segment_and_reason(lang):
    for ch, name in set(MESSAGES):
        for offer in OFFER_TYPES:
            for seg in SEGMENTS:
                for reason in CANCEL_REASONS:
                    ctx = example_context(
                        lang=lang,
                        segment=seg,
                        reason=reason,
                        offer={"type": offer, "discount_pct": 15.0, "discount_months": 1},
                    )
                    m = R.render(ch, name, ctx)
                    assert m.template.startswith(f"{lang}/")
                    assert m.text and ("{{" not in m.text)
                    if ch == "email":
                        assert m.subject and m.html.startswith("<html>")
                        assert ctx["unsubscribe_url"] in m.text and ctx["unsubscribe_url"] in m.html
                    if ch == "sms":
                        assert "STOP" in m.text and len(m.text) < 320
                    coded = offer in ("discount", "free_month", "feature_trial", "early_renewal")
                    if coded and not name.startswith("resume_billing"):
                        assert "ABCD-2345-WXYZ" in m.text, (lang, ch, name, offer)


def test_language_specific_text_and_english_fallback():
    de = R.render("email", "intro", example_context(lang="de"))
    assert "Rabatt" in de.text and "Sie haben uns gesagt, dass der Preis zu hoch war" in de.text
    fr = R.render("email", "intro", example_context(lang="fr"))
    assert "réduction" in fr.text
    es = R.render("sms", "sms", example_context(lang="es"))
    assert "descuento" in es.text
    it = R.render("email", "intro", example_context(lang="it"))
    assert it.template == "en/intro.j2"


def test_close_the_loop_message_quotes_the_stated_reason_only():
    stated = R.render(
        "email", "intro", example_context(reason="missing_features", reason_source="stated")
    )
    assert "You mentioned something you needed was missing." in stated.text
    assert "We have shipped new features" in stated.text
    inferred = R.render(
        "email", "intro", example_context(reason="missing_features", reason_source="inferred")
    )
    assert "You mentioned" not in inferred.text and "We have shipped new features" in inferred.text


def test_segment_tone_differs():
    hot = R.render("email", "intro", example_context(segment="hot")).text
    mis = R.render("email", "intro", example_context(segment="misclassified"))
    assert "love to have you back" in hot
    assert "Did you mean to leave?" in mis.text and "still here" in mis.subject


def test_html_is_autoescaped_and_text_is_not():
    m = R.render(
        "email",
        "intro",
        example_context(brand={"name": "<script>x</script>", "url": "https://a.example"}),
    )
    assert "<script>" not in m.html and "&lt;script&gt;" in m.html
    assert "<script>x</script>" in m.text


def test_missing_variable_is_a_render_error_naming_it():
    ctx = example_context()
    del ctx["plan"]
    with pytest.raises(RenderError, match="plan"):
        R.render("email", "intro", ctx)


def test_sandbox_blocks_attribute_tricks(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "evil.j2").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    (tmp_path / "en" / "mutate.j2").write_text("{% set _ = offer.update({'type': 'x'}) %}ok")
    r = TemplateRenderer(tmp_path)
    with pytest.raises(RenderError):
        r.render("sms", "evil", example_context())
    with pytest.raises(RenderError, match="sandbox|unsafe|immutable|update"):
        r.render("sms", "mutate", example_context())


def test_override_by_segment_and_offer_from_user_folder(tmp_path):
    (tmp_path / "de").mkdir()
    (tmp_path / "de" / "sms.hot.discount.j2").write_text("HOT-DISCOUNT {{ code|code }}")
    (tmp_path / "de" / "sms.free_month.j2").write_text("FREE {{ code }}")
    r = TemplateRenderer(tmp_path)
    assert r.render("sms", "sms", example_context(lang="de")).text == "HOT-DISCOUNT ABCD-2345-WXYZ"
    fm = example_context(
        lang="de",
        segment="warm",
        offer={"type": "free_month", "discount_pct": 0, "discount_months": 1},
    )
    assert r.render("sms", "sms", fm).text == "FREE ABCD2345WXYZ"
    assert (
        r.render("sms", "sms", example_context(lang="de", segment="warm")).template == "de/sms.j2"
    )


def test_unknown_template_names_the_fix():
    with pytest.raises(RenderError, match="templates/en/nope.j2"):
        R.render("email", "nope", example_context())


def test_context_has_no_pii_keys():
    ctx = example_context()
    flat = str(ctx).lower()
    assert "email" not in ctx and "phone" not in ctx and "@" not in flat
