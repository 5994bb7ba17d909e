"""Message templates: sandboxed Jinja2, HTML autoescaped, strict about missing variables.

Layout: ``templates/<lang>/<name>.j2`` (package data; a user folder given as
``template_dir`` is searched first). One file holds every part of a message;
the part being rendered is in the variable ``part`` (``subject``, ``text``,
``html``), so subject, plain text and HTML stay side by side.

Resolution order for (name, language, segment, offer_type), first found wins::

    <lang>/<name>.<segment>.<offer_type>.j2
    <lang>/<name>.<offer_type>.j2
    <lang>/<name>.<segment>.j2
    <lang>/<name>.j2
    ... then the same with lang = "en" (fallback)

Invariants

* Rendering runs in :class:`jinja2.sandbox.ImmutableSandboxedEnvironment`
  (no attribute tricks, no mutation of the context).
* The HTML part is rendered with autoescape on; subject and text with it off.
* :class:`jinja2.StrictUndefined`: a missing variable fails the message with
  a :class:`RenderError` naming the template and the variable.
* The context holds the offer, the code and its expiry, the plan tier, the
  stated/inferred reason, the brand and (e-mail only) the unsubscribe link;
  never an e-mail address, a phone number or free text from the customer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from winback_ml.dispatch.codes import format_code
from winback_ml.exceptions import DispatchError

__all__ = ["Rendered", "RenderError", "TemplateRenderer", "FALLBACK_LANGUAGE", "LANGUAGES"]

FALLBACK_LANGUAGE = "en"
#: Languages shipped with the package.
LANGUAGES = ("en", "de", "fr", "es")
_PARTS = {"email": ("subject", "text", "html"), "sms": ("text",), "in_app": ("subject", "text")}


class RenderError(DispatchError):
    """A template is missing, broken, or needs a variable that is not there."""


@dataclass(frozen=True)
class Rendered:
    """A rendered message: ``subject`` (e-mail, in-app title), ``text`` and ``html`` (e-mail)."""

    template: str
    text: str
    subject: str | None = None
    html: str | None = None


class TemplateRenderer:
    """Render message templates for a channel, a language, a segment and an offer.

    Parameters
    ----------
    template_dir : path, optional
        A folder laid out like the package's ``templates/``; its files win.

    Examples
    --------
    >>> r = TemplateRenderer()
    >>> ctx = example_context()
    >>> m = r.render("email", "intro", ctx)
    >>> "ABCD-2345-WXYZ" in m.text and "unsubscribe" in m.text.lower()
    True
    """

    def __init__(self, template_dir: str | Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if template_dir is not None:
            loaders.append(jinja2.FileSystemLoader(str(template_dir)))
        loaders.append(jinja2.PackageLoader("winback_ml.dispatch", "templates"))
        loader = jinja2.ChoiceLoader(loaders)
        common = dict(
            loader=loader,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,  # compiled once per renderer; no file stat per message
        )
        self._text_env = ImmutableSandboxedEnvironment(autoescape=False, **common)
        self._html_env = ImmutableSandboxedEnvironment(autoescape=True, **common)
        for env in (self._text_env, self._html_env):
            env.filters["code"] = lambda c: format_code(str(c))
            env.filters["pct"] = lambda v: f"{float(v):g}"
        self._resolved: dict[tuple[str, str, str, str], str] = {}

    def resolve(
        self, name: str, language: str | None, segment: str | None, offer_type: str | None
    ) -> str:
        """The template file used for these attributes (see the module docstring)."""
        lang = (language or FALLBACK_LANGUAGE).lower()
        key = (name, lang, str(segment), str(offer_type))
        hit = self._resolved.get(key)
        if hit is not None:
            return hit
        candidates = []
        for lg in dict.fromkeys([lang, FALLBACK_LANGUAGE]):
            candidates += [
                f"{lg}/{name}.{segment}.{offer_type}.j2",
                f"{lg}/{name}.{offer_type}.j2",
                f"{lg}/{name}.{segment}.j2",
                f"{lg}/{name}.j2",
            ]
        try:
            t = self._text_env.select_template(candidates)
        except jinja2.TemplateNotFound as e:
            raise RenderError(
                f"No template {name!r} for language {lang!r} (nor the fallback "
                f"{FALLBACK_LANGUAGE!r}); looked for {candidates}. Fix: add templates/{FALLBACK_LANGUAGE}/{name}.j2."
            ) from e
        except jinja2.TemplateSyntaxError as e:
            raise RenderError(
                f"Template {e.filename or name!r} line {e.lineno}: {e.message}"
            ) from e
        self._resolved[key] = t.name
        return t.name

    def render(self, channel: str, name: str, context: dict[str, Any]) -> Rendered:
        """Render every part of a message for ``channel`` (``email``, ``sms``, ``in_app``).

        Raises
        ------
        RenderError
            The template is missing, has a syntax error, needs a variable the
            context does not have, or breaks the sandbox.
        """
        if channel not in _PARTS:
            raise RenderError(f"channel must be one of {list(_PARTS)}. Got {channel!r} instead.")
        tname = self.resolve(
            name, context.get("lang"), context.get("segment"), _offer_type(context)
        )
        out: dict[str, str] = {}
        for part in _PARTS[channel]:
            env = self._html_env if part == "html" else self._text_env
            try:
                text = env.get_template(tname).render({**context, "part": part, "channel": channel})
            except jinja2.UndefinedError as e:
                raise RenderError(
                    f"Template {tname!r} ({part}): missing variable: {e.message}"
                ) from e
            except jinja2.TemplateSyntaxError as e:
                raise RenderError(f"Template {tname!r} line {e.lineno}: {e.message}") from e
            except jinja2.exceptions.SecurityError as e:
                raise RenderError(f"Template {tname!r} ({part}) broke the sandbox: {e}") from e
            except Exception as e:  # any other template runtime error fails this message only
                raise RenderError(
                    f"Template {tname!r} ({part}) failed: {type(e).__name__}: {e}"
                ) from e
            out[part] = text.strip()
        if channel != "sms" and not out.get("subject"):
            raise RenderError(f"Template {tname!r} rendered an empty subject for {channel}.")
        if not out.get("text"):
            raise RenderError(f"Template {tname!r} rendered an empty text part for {channel}.")
        return Rendered(
            template=tname, text=out["text"], subject=out.get("subject"), html=out.get("html")
        )


def _offer_type(context: dict[str, Any]) -> str | None:
    offer = context.get("offer")
    return offer.get("type") if isinstance(offer, dict) else None


def example_context(**overrides: Any) -> dict[str, Any]:
    """A complete template context (for docs, tests and template authors)."""
    ctx: dict[str, Any] = {
        "lang": "en",
        "segment": "hot",
        "reason": "too_expensive",
        "reason_source": "stated",
        "offer": {"type": "discount", "discount_pct": 20.0, "discount_months": 3},
        "code": "ABCD2345WXYZ",
        "code_expires": "2026-07-31",
        "days_left": 30,
        "plan": {"tier": "pro"},
        "brand": {"name": "Acme", "url": "https://acme.example"},
        "unsubscribe_url": "https://acme.example/unsubscribe?t=token",
        "step": {"name": "intro", "day": 0, "index": 0},
        "variant": "default",
    }
    ctx.update(overrides)
    return ctx


__all__ += ["example_context"]
