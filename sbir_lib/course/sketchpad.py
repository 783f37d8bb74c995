"""The sketch pad: draw a query with the mouse and see, live, which photos a trained run retrieves.

Taught in ``notebooks/09_draw_a_query.ipynb``. The logic (rendering, perturbations, retrieval, which
network) is in :mod:`sbir_lib.course.query`; this module holds the state of one pad and its widgets.

:class:`SketchPad` works with or without a browser: ``add_stroke`` / ``undo`` / ``clear`` /
``load_sketch`` / ``perturb`` change the drawing, ``run()`` retrieves, ``figure()`` draws the result (what a
notebook run under papermill shows), ``sweep()`` ranks the target under every perturbation of the
perturb panel. ``widget()`` adds the live pad: an ``ipycanvas`` canvas (mouse strokes, clear, undo), the
dataset, model and target pickers, a test sketch loader and the perturb panel. A finished stroke starts
the query after ``debounce_s`` seconds without a new one; the results panel then shows the top ``k``
gallery photos with their distances, the attention mask over the drawing and the target's rank.
"""
from __future__ import annotations

import asyncio
import io

import numpy as np
import torch

from sbir_lib.core import records as R
from sbir_lib.core.profiles import DEFAULT_PROFILE
from sbir_lib.core.plotting import overlay_attention, show_image
from sbir_lib.course import query as Q
from sbir_lib.data.augment import center_crop
from sbir_lib.metrics import retrieval as M
from sbir_lib.core import tablespec as P

#: a finished stroke waits this long (seconds) for the next one before the query runs
DEBOUNCE_S = 0.4
#: the pad shows the sketch this many times larger than the network's image (easier to draw on)
CANVAS_SCALE = 2
#: the perturb panel's sliders reach this many steps of the sweep (sixteenths of the image, stroke widths)
SLIDER_STEPS = 4
#: gallery thumbnails in figures are downscaled to this side (keeps committed notebooks small)
THUMB = 96
MATCH_COLOUR = "limegreen"


def strokes_figure(strokes, style: Q.SketchStyle, size: float = 3.2):
    """Strokes as the pad records them (canvas points) next to the image :func:`~sbir_lib.course.query.
    render_strokes` makes of them, the way QMUL sketches look (notebook 09)."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(2 * size, size))
    for i, s in enumerate(strokes):
        pts = np.asarray(s, dtype=float).reshape(-1, 2)
        a.plot(pts[:, 0], pts[:, 1], marker=".", ms=3, label=f"stroke {i + 1}")
    side = style.size * CANVAS_SCALE
    a.set(xlim=(0, side), ylim=(side, 0), aspect="equal", xlabel="canvas x (px)", ylabel="canvas y (px)",
          title="strokes as drawn on the pad")
    a.legend(fontsize=7)
    b.imshow(Q.render_strokes(strokes, style), cmap="gray", vmin=0, vmax=255)
    b.set(xlabel="x (px)", ylabel="y (px)", title=f"rendered: {style.size} x {style.size}, centred, "
                                                  f"{style.line_width:.2f} px lines")
    b.title.set_fontsize(8)
    fig.tight_layout()
    return fig


def _thumb(img, size: int = THUMB) -> np.ndarray:
    from PIL import Image

    a = np.asarray(img)
    return a if a.shape[0] <= size else np.asarray(Image.fromarray(a).resize((size, size), Image.LANCZOS))


class SketchPad:
    """One drawing, the dataset and model it is matched against, and the last result.

    ``ctx``: the notebook's :class:`sbir_lib.course.context.Course` (data, profile, whether runs may be
    trained and networks rebuilt here: then Triplet SN and DSSA are recorded first where they are not);
    ``datasets``: the categories offered (those falling back to the same synthetic data, once); ``k``:
    gallery items shown."""

    def __init__(self, ctx, datasets=P.DATASETS, k: int = 10, results=None, debounce_s: float = DEBOUNCE_S,
                 log=print):
        self.ctx, self.k, self.results, self.debounce_s, self.log = ctx, k, results, debounce_s, log
        keys = {ctx.dataset_key(d): d for d in reversed(datasets)}  # one entry per data (synthetic: once)
        datasets = [d for d in datasets if keys[ctx.dataset_key(d)] == d]
        for d in datasets:  # where training is allowed, missing records are trained as in notebooks 05/06
            if ctx.train_missing and not Q.model_choices(ctx.dataset_key(d), ctx.profile, results):
                for _, experiment, row in Q.MODELS:
                    ctx.record(experiment, d, row, 0)
        #: whose records the pad uses: the notebook's profile, or the quick one when no full-profile run is recorded
        self.profile = ctx.profile
        self.datasets = [d for d in datasets if Q.model_choices(ctx.dataset_key(d), self.profile, results)]
        if not self.datasets and self.profile != DEFAULT_PROFILE:
            live = [d for d in datasets if Q.model_choices(ctx.dataset_key(d), DEFAULT_PROFILE, results)]
            if live:
                log(f"no {self.profile}-profile run is recorded: the pad uses the {DEFAULT_PROFILE}-profile runs")
                self.profile, self.datasets = DEFAULT_PROFILE, live
        self.missing = {d: self._missing_message(d) for d in datasets if d not in self.datasets}
        for msg in self.missing.values():
            log(msg)
        first = getattr(ctx, "dataset_name", None)  # the notebook's ``dataset`` parameter
        self.dataset = first if first in self.datasets else (self.datasets[0] if self.datasets else None)
        labels = [c.label for c in self.choices()] if self.dataset else []
        self.model = "DSSA" if "DSSA" in labels else (labels[0] if labels else None)
        self.strokes: list[list[tuple[float, float]]] = []
        self.background: np.ndarray | None = None
        self.target: int | None = None
        self.perturbation: dict = {}
        self.result: Q.QueryResult | None = None
        self.queries = 0
        self._retrievers: dict = {}
        self._styles: dict = {}
        self._ui: dict = {}
        self._pending = None
        self._current: list | None = None

    # ------------------------------------------------------------------ data and models
    def data(self, name: str | None = None):
        """The dataset (with photos) of ``name`` (default: the selected one), loaded once by the course."""
        return self.ctx.dataset(name or self.dataset, photos=True)

    def title(self, name: str | None = None) -> str:
        """The dataset's name in figures (``QMUL-Shoe``; ``(synthetic)`` added for the stand-in)."""
        name = name or self.dataset
        synthetic = self.ctx.dataset_key(name) == "synthetic" and name != "synthetic"
        return P.DATASET_TITLES.get(name, name) + (" (synthetic)" if synthetic else "")

    def style(self) -> Q.SketchStyle:
        """How this dataset's training sketches look (measured once per dataset)."""
        if self.dataset not in self._styles:
            self._styles[self.dataset] = Q.measure_style(self.data().train.sketches.numpy())
        return self._styles[self.dataset]

    def choices(self) -> list[Q.Choice]:
        return Q.model_choices(self.ctx.dataset_key(self.dataset), self.profile, self.results)

    def _missing_message(self, name: str) -> str:
        """What to run so that ``name`` has a model: the course's command for the missing rows (which, on the
        synthetic stand-in in the full profile, names the download first)."""
        by_exp: dict[str, list[str]] = {}
        for _, experiment, row in Q.MODELS:
            by_exp.setdefault(experiment, []).append(row)
        cmds = "\n".join(f"  {self.ctx.record_command(exp, name, rows, [0])}" for exp, rows in by_exp.items())
        return (f"No trained model for the sketch pad on {self.ctx.dataset_key(name)} ({self.profile} profile). "
                f"Record Triplet SN and DSSA with:\n{cmds}")

    def ready(self) -> bool:
        """Whether the selected model can answer queries here (loading it, or rebuilding it where runs may be
        trained); when not, prints why and what to run, and the notebook's later cells skip."""
        if self.dataset is None:
            self.log("nothing to query: no run is recorded (see above for the command that records one)")
            return False
        try:
            self.retriever()
        except Q.NoTrainedModel as e:
            self.log(f"the pad cannot answer here: {e}")
            return False
        return True

    def retriever(self, label: str | None = None) -> Q.Retriever:
        """The :class:`~sbir_lib.course.query.Retriever` of model ``label`` (default: the selected one),
        loaded (or rebuilt) once; its agreement with the recorded run is printed on loading."""
        label = label or self.model
        key = (self.dataset, label)
        if key not in self._retrievers:
            choice = next((c for c in self.choices() if c.label == label), None)
            if choice is None:
                raise Q.NoTrainedModel(f"no model {label!r} recorded for {self.dataset}; "
                                       f"recorded: {', '.join(c.label for c in self.choices())}")
            r = Q.load_retriever(choice, self.data(), rebuild=self.ctx.train_missing, device=self.ctx.device,
                                 results=self.results, log=self.log)
            self.log(f"{self.title()}, {label} ({r.how}): "
                     f"{Q.describe_check(r.check)}")
            self._retrievers[key] = r
        return self._retrievers[key]

    # ------------------------------------------------------------------ the drawing
    def select(self, dataset: str | None = None, model: str | None = None) -> None:
        """Switch the dataset (clears the drawing and the target) and/or the model."""
        if dataset is not None and dataset != self.dataset:
            if dataset not in self.datasets:
                raise ValueError(f"dataset must be one of {', '.join(self.datasets)}; got {dataset!r}")
            self.dataset = dataset
            self.clear()
            self.target = None
            labels = [c.label for c in self.choices()]
            self.model = self.model if self.model in labels else labels[0]
        if model is not None:
            if model not in [c.label for c in self.choices()]:
                raise ValueError(f"model must be one of {', '.join(c.label for c in self.choices())}; "
                                 f"got {model!r}")
            self.model = model

    def add_stroke(self, points) -> None:
        """A finished stroke: canvas points ``(x, y)`` (the canvas is ``CANVAS_SCALE`` x the image)."""
        pts = [(float(x), float(y)) for x, y in points]
        if pts:
            self.strokes.append(pts)

    def undo(self) -> None:
        """Remove the last stroke (nothing happens on an empty pad)."""
        if self.strokes:
            self.strokes.pop()

    def clear(self) -> None:
        """Remove every stroke and the loaded test sketch."""
        self.strokes, self.background = [], None

    def load_sketch(self, index: int) -> None:
        """Put test sketch ``index`` (pixels) on the pad and pick its photo as the target."""
        sketches = self.data().test.sketches
        if not 0 <= index < len(sketches):
            raise ValueError(f"test sketch must be in 0..{len(sketches) - 1}; got {index}")
        self.strokes, self.background = [], sketches[index].numpy().copy()
        self.target = int(index)

    def perturb(self, **kw) -> None:
        """Set the perturbation applied to the drawing (keywords of :func:`sbir_lib.course.query.perturb`)."""
        self.perturbation = {k: v for k, v in kw.items() if v}

    def drawing(self) -> np.ndarray:
        """The drawing, unperturbed: uint8 [256, 256], the strokes rendered over the loaded sketch (in its
        frame) or centred and scaled like a QMUL sketch."""
        frame = Q.Frame(1 / CANVAS_SCALE, 0.0, 0.0) if self.background is not None else None
        return Q.render_strokes(self.strokes, self.style(), frame, self.background)

    def image(self) -> np.ndarray:
        """The query as the network gets it: :meth:`drawing` with the pad's perturbation applied."""
        return Q.perturb(self.drawing(), **self.perturbation)

    def is_blank(self) -> bool:
        return Q.ink_bbox(self.image()) is None

    # ------------------------------------------------------------------ retrieval and figures
    def run(self) -> Q.QueryResult | None:
        """Retrieve for the current drawing (``None`` on a blank pad)."""
        self.result = None if self.is_blank() else self.retriever().query(self.image(), self.target, self.k)
        self.queries += 1
        return self.result

    def example_query(self, k: int | None = None) -> int:
        """A test sketch to start from, by a fixed rule: the first whose true match the selected model ranks
        within its top ``k`` (default: the pad's ``k``) in the recorded distances (0 if none does)."""
        ranks = M.rank_of_true_match(np.load(R.dist_path(self.retriever().choice.record)))
        hits = np.flatnonzero(ranks < (k or self.k))
        return int(hits[0]) if hits.size else 0

    def gallery_image(self, i: int) -> np.ndarray:
        test = self.data().test
        return (test.photos[i] if test.photos is not None else test.edges[i]).numpy()

    def summary(self) -> str:
        """One line on the last result: model, target rank, time."""
        r = self.result
        if r is None:
            return f"query {self.queries}: the pad is empty; draw a {self.dataset[:-1]} or load a test sketch"
        rank = "no target picked" if r.rank is None else f"target photo {r.target} at rank {r.rank + 1}"
        return (f"query {self.queries}: {self.model} on {self.title()}, "
                f"{rank}; {1000 * r.seconds:.0f} ms for {len(r.dist)} photos")

    def figure(self, result: Q.QueryResult | None = None, size: float = 1.25):
        """The query (as the network sees it), its attention mask (DSSA) and the top ``k`` gallery photos
        with their distances; the target photo outlined green. ``result``: default a new :meth:`run` of the
        current drawing. ``None`` on a blank pad."""
        import matplotlib.pyplot as plt

        r = result if result is not None else self.run()
        if r is None:
            print(self.summary())
            return None
        k = len(r.top)
        fig, axes = plt.subplots(1, k + 2, figsize=(size * (k + 2), size * 1.6), squeeze=False)
        axes = axes[0]
        show_image(axes[0], r.image, "query (256 x 256)")
        crop = center_crop(torch.as_tensor(r.image)[None])[0, 0].numpy()
        if r.alpha is not None:
            overlay_attention(axes[1], crop, r.alpha, "attention (Eq. 3)")
        else:
            show_image(axes[1], crop, "no attention module")
        for j, g in enumerate(r.top):
            g = int(g)
            show_image(axes[j + 2], _thumb(self.gallery_image(g)), f"#{j + 1}: photo {g}\nd = {r.dist[g]:.3g}",
                       outline=MATCH_COLOUR if g == r.target else None, fontsize=7)
        axes[2].set_ylabel("top k", fontsize=8)
        fig.suptitle(self.summary().partition(": ")[2], fontsize=9)
        fig.tight_layout()
        return fig

    def sweep(self, models=None):
        """The target's rank (1 = first) under each perturbation of :func:`sbir_lib.course.query.perturbations`
        of the current drawing, one column per model (default: the selected one); a pandas DataFrame."""
        import pandas as pd

        if self.target is None or self.is_blank():
            raise ValueError("pick a target photo and draw (or load a test sketch) before a sweep")
        sweep = Q.perturbations(self.style())
        imgs = np.stack([Q.perturb(self.drawing(), **kw) for _, kw in sweep])
        cols = {m: [r + 1 for r in self.retriever(m).ranks(imgs, self.target)] for m in (models or [self.model])}
        return pd.DataFrame(cols, index=pd.Index([lab for lab, _ in sweep], name="perturbation"))

    def median_sweep(self, sketches, models=None):
        """:meth:`sweep` of several test sketches (each loaded in turn, its photo the target): the median
        rank per perturbation and model. The pad's drawing is put back afterwards."""
        import pandas as pd

        saved = (self.strokes, self.background, self.target)
        try:
            tables = []
            for i in sketches:
                self.load_sketch(int(i))
                tables.append(self.sweep(models))
        finally:
            self.strokes, self.background, self.target = saved
        return pd.concat(tables).groupby(level=0, sort=False).median()

    def sweep_figure(self, table, images: bool = True, what: str = "rank of the target photo"):
        """Bars of a :meth:`sweep` (or :meth:`median_sweep`) table: the target's rank per perturbation and
        model, with the current drawing under each perturbation above when ``images``; ``what``: the
        y axis (e.g. a median over sketches)."""
        import matplotlib.pyplot as plt

        sweep = Q.perturbations(self.style())
        n = len(table)
        fig = plt.figure(figsize=(max(8.0, 0.75 * n), 5.2 if images else 3.4))
        grid = fig.add_gridspec(2 if images else 1, n, height_ratios=[1, 2.4] if images else [1])
        for j, (label, kw) in enumerate(sweep if images else []):
            crop = center_crop(torch.as_tensor(Q.perturb(self.drawing(), **kw))[None])[0, 0].numpy()
            show_image(fig.add_subplot(grid[0, j]), _thumb(crop), label, fontsize=6)
        ax = fig.add_subplot(grid[-1, :])
        table.plot.bar(ax=ax, rot=35, width=0.8)
        ax.set_xlabel("perturbation of the drawing")
        ax.set_ylabel(f"{what} (1 = first)")
        ax.axhline(self.k, color="grey", ls="--", lw=1, label=f"top {self.k}")
        ax.set_ylim(0, len(self.data().test))
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"{self.title()}: how the true match's rank moves",
                     fontsize=9)
        plt.setp(ax.get_xticklabels(), ha="right", fontsize=7)
        fig.tight_layout()
        return fig

    def attention_figure(self, images, names, size: float = 2.2):
        """Each image with the selected model's attention mask over its centre crop: for comparing versions
        of one drawing (the attention exercise of notebook 09)."""
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size * 1.2), squeeze=False)
        for ax, img, name in zip(axes[0], images, names):
            alpha = self.retriever().query(img).alpha
            crop = center_crop(torch.as_tensor(np.asarray(img))[None])[0, 0].numpy()
            if alpha is None:
                show_image(ax, crop, f"{name}\n(no attention module)")
            else:
                overlay_attention(ax, crop, alpha, name)
        fig.suptitle(f"{self.model}: attention (Eq. 3) over each version", fontsize=9)
        fig.tight_layout()
        return fig

    def attention_table(self, images, names):
        """:func:`sbir_lib.course.query.attention_on_parts` of each image under the selected model: per
        version and part, the share of attention on the ink there and the share of the ink there."""
        import pandas as pd

        rows = {}
        for img, name in zip(images, names):
            alpha = self.retriever().query(img).alpha
            if alpha is None:
                raise ValueError(f"{self.model} has no attention module: pick DSSA")
            for part, shares in Q.attention_on_parts(img, alpha).items():
                rows[(name, part)] = shares
        return pd.DataFrame(rows).T.rename_axis(["version", "part"]).unstack("part").round(3)

    def latency(self, repeats: int = 20) -> dict:
        """Median and worst seconds of one query (embedding + ranking the whole gallery) over ``repeats``."""
        img = self.image()
        times = [self.retriever().query(img, self.target, self.k).seconds for _ in range(repeats)]
        return {"median s": float(np.median(times)), "max s": float(np.max(times)),
                "gallery": int(self.retriever().gallery.shape[1]), "model": self.model}

    # ------------------------------------------------------------------ the live widget
    def widget(self):
        """The live pad (needs a browser and a running kernel; a notebook run without one shows the static
        figures instead). Returns an ipywidgets box."""
        import ipywidgets as W
        from ipycanvas import Canvas

        if not self.datasets:
            return W.HTML("<pre>" + "\n\n".join(self.missing.values()) + "</pre>")
        side = self.style().size * CANVAS_SCALE
        canvas = Canvas(width=side, height=side, layout=W.Layout(border="1px solid #999", width=f"{side}px",
                                                                 height=f"{side}px"))
        canvas.add_class("sbir-sketchpad-canvas")
        ui = {"canvas": canvas}
        ui["dataset"] = W.Dropdown(options=[(self.title(d), d) for d in self.datasets],
                                   value=self.dataset, description="dataset")
        ui["model"] = W.Dropdown(options=[c.label for c in self.choices()], value=self.model, description="model")
        ui["target"] = W.Dropdown(description="target", options=self._target_options(), value=self.target)
        ui["sketch"] = W.BoundedIntText(value=0, min=0, max=len(self.data().test) - 1, description="test sketch")
        ui["load"], ui["clear"], ui["undo"] = (W.Button(description=d) for d in ("load sketch", "clear", "undo"))
        ui["drop"] = W.Dropdown(options=[("nothing", None)] + [(p, p) for p in Q.PARTS], description="drop")
        reach = SLIDER_STEPS * (self.style().size // 16)  # as query.perturbations steps shifts
        ui["dx"], ui["dy"] = (W.IntSlider(0, -reach, reach, description=d, continuous_update=False)
                              for d in ("shift x", "shift y"))
        ui["thick"] = W.IntSlider(0, 0, SLIDER_STEPS * max(1, round(self.style().line_width)),
                                  description="thicken", continuous_update=False)
        ui["sweep"] = W.Button(description="rank under each perturbation", layout=W.Layout(width="auto"))
        ui["status"] = W.HTML(self.summary())
        ui["status"].add_class("sbir-sketchpad-status")
        ui["results"], ui["sweep_plot"] = (W.Image(format="png", layout=W.Layout(display="none"))
                                           for _ in range(2))  # shown once they hold a figure
        ui["results"].add_class("sbir-sketchpad-results")
        self._ui = ui
        self._connect()
        self._redraw_canvas()
        self.update()
        controls = W.VBox([ui["dataset"], ui["model"], ui["target"], W.HBox([ui["clear"], ui["undo"]]),
                           W.HTML("<b>ready-made strokes</b>"), W.HBox([ui["sketch"], ui["load"]]),
                           W.HTML("<b>perturb</b>"), ui["drop"], ui["dx"], ui["dy"], ui["thick"], ui["sweep"]])
        return W.VBox([W.HBox([canvas, controls]), ui["status"], ui["results"], ui["sweep_plot"]])

    def _target_options(self):
        return [("none", None)] + [(f"photo {i}", i) for i in range(len(self.data().test))]

    def _connect(self) -> None:
        ui, canvas = self._ui, self._ui["canvas"]

        def down(x, y):
            self._current = [(x, y)]

        def move(x, y):
            if self._current is not None:
                canvas.stroke_line(*self._current[-1], x, y)
                self._current.append((x, y))

        def up(x, y):
            if self._current is not None:
                self.add_stroke(self._current)
                self._current = None
                self.schedule()

        canvas.on_mouse_down(down)
        canvas.on_mouse_move(move)
        canvas.on_mouse_up(up)
        canvas.on_mouse_out(up)

        def edit(action):
            def handler(_):
                action()
                self._redraw_canvas()
                self.schedule()
            return handler

        ui["clear"].on_click(edit(self.clear))
        ui["undo"].on_click(edit(self.undo))
        ui["load"].on_click(edit(lambda: (self.load_sketch(ui["sketch"].value),
                                          setattr(ui["target"], "value", self.target))))

        def on_dataset(change):
            self.select(dataset=change["new"])
            ui["model"].options = [c.label for c in self.choices()]
            ui["model"].value = self.model
            ui["target"].options = self._target_options()
            ui["target"].value = None
            ui["sketch"].max = len(self.data().test) - 1
            self._redraw_canvas()
            self.schedule()

        def on_model(change):
            if change["new"] is not None:
                self.select(model=change["new"])
                self.schedule()

        def on_target(change):
            self.target = change["new"]
            self.schedule()

        def on_perturb(_):
            self.perturb(drop=ui["drop"].value, dx=ui["dx"].value, dy=ui["dy"].value, thick=ui["thick"].value)
            self.schedule()

        def on_sweep(_):
            try:
                self._show(self._ui["sweep_plot"], self.sweep_figure(self.sweep()))
            except ValueError as e:
                ui["status"].value = f"<b>{e}</b>"

        ui["dataset"].observe(on_dataset, names="value")
        ui["model"].observe(on_model, names="value")
        ui["target"].observe(on_target, names="value")
        for name in ("drop", "dx", "dy", "thick"):
            ui[name].observe(on_perturb, names="value")
        ui["sweep"].on_click(on_sweep)

    def _redraw_canvas(self) -> None:
        from ipycanvas import hold_canvas

        canvas, style = self._ui["canvas"], self.style()
        with hold_canvas():
            canvas.clear()
            canvas.fill_style = "white"
            canvas.fill_rect(0, 0, canvas.width, canvas.height)
            if self.background is not None:
                from PIL import Image

                big = Image.fromarray(self.background).resize((canvas.width, canvas.height), Image.BILINEAR)
                canvas.put_image_data(np.repeat(np.asarray(big)[..., None], 3, axis=2), 0, 0)
            canvas.stroke_style, canvas.line_cap, canvas.line_join = "black", "round", "round"
            canvas.line_width = style.line_width * CANVAS_SCALE
            for s in self.strokes:
                canvas.stroke_lines(s)

    def schedule(self) -> None:
        """Run :meth:`update` once no new stroke has come for ``debounce_s`` seconds (at once outside an
        event loop, e.g. in a script)."""
        if self._pending is not None:
            self._pending.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.update()
            return
        self._pending = loop.call_later(self.debounce_s, self.update)

    @staticmethod
    def _show(image, fig) -> None:
        """Put a matplotlib figure into an ``ipywidgets.Image`` (as PNG) and show it."""
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)
        image.value = buf.getvalue()
        image.layout.display = None

    def update(self) -> None:
        """Retrieve for the drawing and refresh the results panel (errors are shown there, not raised)."""
        self._pending = None
        if not self._ui:
            self.run()
            return
        try:
            result = self.run()
            if result is not None:
                self._show(self._ui["results"], self.figure(result))
            else:
                self._ui["results"].layout.display = "none"
            self._ui["status"].value = self.summary()
        except (Q.NoTrainedModel, ValueError, RuntimeError) as e:
            self._ui["status"].value = f"<b>{e}</b>"


__all__ = ["CANVAS_SCALE", "DEBOUNCE_S", "SketchPad", "strokes_figure"]
