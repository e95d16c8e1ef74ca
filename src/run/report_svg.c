// report_svg.c — the SVG chart of `qshard report` (report_doc.h): the per-module error (or loss) of
// every decoder layer, one polyline with circle markers per module kind, drawn as plain SVG 1.1 text
// (no scripts, fonts or external references, so any browser or Markdown viewer shows it as is).
#include "run/report_doc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Canvas and plot area in SVG user units (the viewBox is 0 0 W H; every drawn point lies in the plot area).
enum { SVG_W = 880, SVG_H = 500, PLOT_X0 = 90, PLOT_X1 = 700, PLOT_Y0 = 70, PLOT_Y1 = 420, LEGEND_X = 725 };
static const char *const k_colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                       "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
enum { N_COLORS = sizeof(k_colors) / sizeof(k_colors[0]) };

// Text as XML character data or attribute value: markup characters as entities; control characters,
// which XML 1.0 does not allow, as '?' (jansson's strings are valid UTF-8 without NUL).
static void xml_text(FILE *o, const char *s) {
  for (; s && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '&') fputs("&amp;", o);
    else if (c == '<') fputs("&lt;", o);
    else if (c == '>') fputs("&gt;", o);
    else if (c == '"') fputs("&quot;", o);
    else if (c == '\'') fputs("&apos;", o);
    else if (c < 0x20 && c != '\t' && c != '\n') fputc('?', o);
    else fputc(c, o);
  }
}

// The y axis: values v map to t = v (linear) or log10(v), and t in [lo, hi] to the plot's height;
// ticks at lo, lo + step, ..., hi.
struct yaxis {
  int log;
  double lo, hi, step;
};

// The smallest of 1, 2, 5 x 10^k that is >= x (x > 0).
static double nice_step(double x) {
  double mag = pow(10.0, floor(log10(x)));
  return x <= mag ? mag : x <= 2 * mag ? 2 * mag : x <= 5 * mag ? 5 * mag : 10 * mag;
}

// Log scale when every value is positive and they span more than a decade (max/min > 10): whole
// decades, at most ~8 ticks. Else linear from 0 (errors and losses are >= 0) to a round maximum.
static struct yaxis y_axis(double vmin, double vmax) {
  struct yaxis y = {0};
  if (vmin > 0 && vmax / vmin > 10) {
    y.log = 1;
    y.lo = floor(log10(vmin));
    y.hi = ceil(log10(vmax));
    y.step = ceil((y.hi - y.lo) / 8.0);
    y.hi = y.lo + y.step * ceil((y.hi - y.lo) / y.step);
    return y;
  }
  double top = vmax > 0 ? vmax : 1.0;
  y.step = nice_step(top / 5.0);
  y.hi = y.step * ceil(top / y.step);
  return y;
}

static double y_pos(const struct yaxis *y, double v) {
  double t = y->log ? log10(v) : v;
  return PLOT_Y1 - (t - y->lo) / (y->hi - y->lo) * (PLOT_Y1 - PLOT_Y0);
}

static double x_pos(int n_layers, int layer) {
  if (n_layers <= 1) return 0.5 * (PLOT_X0 + PLOT_X1);
  const double pad = 15; // markers of the first and last layer clear of the axes
  return PLOT_X0 + pad + (PLOT_X1 - PLOT_X0 - 2 * pad) * layer / (double)(n_layers - 1);
}

static void svg_axes(FILE *o, const struct qs_report_doc *d, const struct yaxis *y) {
  fprintf(o, "<g class=\"axes\" stroke=\"#000\" stroke-width=\"1\" fill=\"none\">\n"
             "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>\n</g>\n",
          PLOT_X0, PLOT_Y0, PLOT_X1 - PLOT_X0, PLOT_Y1 - PLOT_Y0);
  fprintf(o, "<g class=\"yticks\" font-size=\"11\" text-anchor=\"end\">\n");
  int n_ticks = (int)lround((y->hi - y->lo) / y->step);
  for (int i = 0; i <= n_ticks; i++) {
    double t = y->lo + i * y->step, v = y->log ? pow(10.0, t) : t;
    double py = PLOT_Y1 - (t - y->lo) / (y->hi - y->lo) * (PLOT_Y1 - PLOT_Y0);
    fprintf(o, "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#ddd\"/>", PLOT_X0, py, PLOT_X1, py);
    fprintf(o, "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#000\"/>", PLOT_X0 - 5, py, PLOT_X0, py);
    fprintf(o, "<text x=\"%d\" y=\"%.2f\">%.3g</text>\n", PLOT_X0 - 8, py + 4, v);
  }
  fprintf(o, "</g>\n<g class=\"xticks\" font-size=\"11\" text-anchor=\"middle\">\n");
  int step = d->n_layers <= 20 ? 1 : (int)ceil(d->n_layers / 10.0);
  for (int l = 0; l < d->n_layers; l += step) {
    double px = x_pos(d->n_layers, l);
    fprintf(o, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"#000\"/>", px, PLOT_Y1, px, PLOT_Y1 + 5);
    fprintf(o, "<text x=\"%.2f\" y=\"%d\">%d</text>\n", px, PLOT_Y1 + 19, l);
  }
  fprintf(o, "</g>\n<text x=\"%d\" y=\"%d\" font-size=\"13\" text-anchor=\"middle\">decoder layer</text>\n",
          (PLOT_X0 + PLOT_X1) / 2, PLOT_Y1 + 42);
  fprintf(o, "<text x=\"24\" y=\"%d\" font-size=\"13\" text-anchor=\"middle\" transform=\"rotate(-90 24 %d)\">%s%s</text>\n",
          (PLOT_Y0 + PLOT_Y1) / 2, (PLOT_Y0 + PLOT_Y1) / 2, qs_report_doc_metric_name(d), y->log ? " (log scale)" : "");
}

// Kind k's points in layer order: one polyline, a circle per module (its <title> the module and value),
// and its legend entry at row `row`.
static qs_status svg_kind(FILE *o, const struct qs_report_doc *d, const struct yaxis *y, int k, int row) {
  qs_status status = QS_OK;
  const struct qs_report_module **pts = NULL;
  int n = 0;
  QS_ALLOC(pts, d->n_mods);
  for (int i = 0; i < d->n_mods; i++)
    if (d->mods[i].kind == k && isfinite(qs_report_doc_value(d, &d->mods[i]))) {
      int j = n++;
      for (; j > 0 && pts[j - 1]->layer > d->mods[i].layer; j--) pts[j] = pts[j - 1]; // insertion: stable by layer
      pts[j] = &d->mods[i];
    }
  const char *color = k_colors[row % N_COLORS];
  fprintf(o, "<g class=\"kind\" id=\"kind-");
  xml_text(o, d->kinds[k]);
  fprintf(o, "\">\n<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", color);
  for (int i = 0; i < n; i++)
    fprintf(o, "%s%.2f,%.2f", i ? " " : "", x_pos(d->n_layers, pts[i]->layer), y_pos(y, qs_report_doc_value(d, pts[i])));
  fprintf(o, "\"/>\n");
  for (int i = 0; i < n; i++) {
    fprintf(o, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"%s\"><title>", x_pos(d->n_layers, pts[i]->layer),
            y_pos(y, qs_report_doc_value(d, pts[i])), color);
    xml_text(o, pts[i]->name);
    fprintf(o, ": %.4g</title></circle>\n", qs_report_doc_value(d, pts[i]));
  }
  const int ly = PLOT_Y0 + 10 + 20 * row;
  fprintf(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"1.5\"/>"
             "<circle cx=\"%d\" cy=\"%d\" r=\"3\" fill=\"%s\"/><text x=\"%d\" y=\"%d\" font-size=\"12\">",
          LEGEND_X, ly, LEGEND_X + 24, ly, color, LEGEND_X + 12, ly, color, LEGEND_X + 32, ly + 4);
  xml_text(o, d->kinds[k]);
  fprintf(o, "</text>\n</g>\n");
fail:
  free(pts);
  return status;
}

static void svg_title(FILE *o, const struct qs_report_doc *d) {
  const char *base = strrchr(d->model, '/');
  char grp[32];
  if (d->group_size > 0) snprintf(grp, sizeof(grp), "group %d", d->group_size);
  else snprintf(grp, sizeof(grp), "per-row scales");
  fprintf(o, "<text x=\"20\" y=\"28\" font-size=\"16\" font-weight=\"bold\">");
  xml_text(o, base && base[1] ? base + 1 : d->model);
  fprintf(o, " — ");
  xml_text(o, d->method);
  const json_t *fmts = json_object_get(d->root, "formats"), *f;
  size_t i;
  fprintf(o, ", %d-bit, %s, format%s ", d->bits, grp, json_array_size(fmts) > 1 ? "s" : "");
  json_array_foreach(fmts, i, f) {
    if (i) fputs(", ", o);
    xml_text(o, json_string_value(f));
  }
  fprintf(o, "</text>\n<text x=\"20\" y=\"50\" font-size=\"12\" fill=\"#444\">%s</text>\n",
          d->metric == QS_REPORT_METRIC_REL_ERR ? "per-module relative output error ‖WX − QX‖ / ‖WX‖ on the calibration inputs"
          : d->metric == QS_REPORT_METRIC_LOSS ? "per-module loss of the method (the report holds no relative output error)"
          : "per-module error");
}

qs_status qs_report_doc_svg(const struct qs_report_doc *d, char **text, size_t *len) {
  qs_status status = QS_OK;
  double vmin = INFINITY, vmax = -INFINITY;
  FILE *o = open_memstream(text, len);
  if (!o) QS_FAIL(QS_ERR_OOM, "open_memstream: %s", strerror(errno));
  for (int i = 0; i < d->n_mods; i++) {
    double v = qs_report_doc_value(d, &d->mods[i]);
    if (isfinite(v)) vmin = fmin(vmin, v), vmax = fmax(vmax, v);
  }
  fprintf(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" "
             "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n<title>",
          SVG_W, SVG_H, SVG_W, SVG_H);
  xml_text(o, d->model);
  fprintf(o, ": per-module %s per layer</title>\n<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n",
          qs_report_doc_metric_name(d), SVG_W, SVG_H);
  svg_title(o, d);
  if (d->metric == QS_REPORT_METRIC_NONE || d->n_layers == 0) {
    fprintf(o, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#000\"/>\n"
               "<text class=\"note\" x=\"%d\" y=\"%d\" font-size=\"14\" text-anchor=\"middle\">No per-module error "
               "in this report: %s</text>\n", PLOT_X0, PLOT_Y0, PLOT_X1 - PLOT_X0, PLOT_Y1 - PLOT_Y0,
            (PLOT_X0 + PLOT_X1) / 2, (PLOT_Y0 + PLOT_Y1) / 2,
            d->n_mods ? "RTN without --calib records none (add --calib for the output error)" : "no modules");
  } else {
    struct yaxis y = y_axis(vmin, vmax);
    svg_axes(o, d, &y);
    for (int k = 0, row = 0; k < d->n_kinds; k++) {
      int has = 0;
      for (int i = 0; i < d->n_mods && !has; i++) has = d->mods[i].kind == k && isfinite(qs_report_doc_value(d, &d->mods[i]));
      if (has) QS_TRY(svg_kind(o, d, &y, k, row++));
    }
  }
  fprintf(o, "</svg>\n");
fail:
  if (o && (fclose(o) != 0 || status != QS_OK)) {
    free(*text);
    *text = NULL;
    if (status == QS_OK) status = qs_report(QS_ERR_OOM, __FILE__, __LINE__, __func__, "out of memory rendering SVG");
  }
  return status;
}
