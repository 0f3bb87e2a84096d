// The PDF: Cairo draws, Pango shapes the text (Vietnamese diacritics from the system's fonts),
// a small flow layout breaks pages between lines and table rows.
#include <cairo-pdf.h>
#include <pango/pangocairo.h>

#include <algorithm>
#include <functional>
#include <memory>

#include "format.hpp"

namespace matthan::report {
namespace {

constexpr double kPageW = 595.276, kPageH = 841.89, kMargin = 48;
constexpr double kBottom = kPageH - kMargin - 18;  // room for the page number

class Pdf {
 public:
  explicit Pdf(const std::string& path)
      : surface_(cairo_pdf_surface_create(path.c_str(), kPageW, kPageH)),
        cr_(cairo_create(surface_)),
        layout_(pango_cairo_create_layout(cr_)) {
    pango_layout_set_wrap(layout_, PANGO_WRAP_WORD_CHAR);
  }
  ~Pdf() {
    g_object_unref(layout_);
    cairo_destroy(cr_);
    cairo_surface_destroy(surface_);
  }
  Pdf(const Pdf&) = delete;
  Pdf& operator=(const Pdf&) = delete;

  std::string status() const {
    const auto s = cairo_surface_status(surface_);
    return s == CAIRO_STATUS_SUCCESS ? "" : cairo_status_to_string(s);
  }
  void metadata(const std::string& title) {
    cairo_pdf_surface_set_metadata(surface_, CAIRO_PDF_METADATA_TITLE, title.c_str());
    cairo_pdf_surface_set_metadata(surface_, CAIRO_PDF_METADATA_CREATOR, "Mắt Thần");
  }

  // Lays out text in `width`; returns its height.
  double measure(const std::string& text, const char* font, double width,
                 PangoAlignment align = PANGO_ALIGN_LEFT) {
    auto* desc = pango_font_description_from_string(font);
    pango_layout_set_font_description(layout_, desc);
    pango_font_description_free(desc);
    pango_layout_set_width(layout_, static_cast<int>(width * PANGO_SCALE));
    pango_layout_set_alignment(layout_, align);
    pango_layout_set_text(layout_, text.c_str(), -1);
    int w = 0, h = 0;
    pango_layout_get_size(layout_, &w, &h);
    return static_cast<double>(h) / PANGO_SCALE;
  }
  // The width of one unwrapped line.
  double width_of(const std::string& text, const char* font) {
    auto* desc = pango_font_description_from_string(font);
    pango_layout_set_font_description(layout_, desc);
    pango_font_description_free(desc);
    pango_layout_set_width(layout_, -1);
    pango_layout_set_text(layout_, text.c_str(), -1);
    int w = 0, h = 0;
    pango_layout_get_size(layout_, &w, &h);
    return static_cast<double>(w) / PANGO_SCALE;
  }
  double draw_text(const std::string& text, const char* font, double x, double y, double width,
                   PangoAlignment align = PANGO_ALIGN_LEFT) {
    const double h = measure(text, font, width, align);
    cairo_set_source_rgb(cr_, 0.07, 0.07, 0.07);
    cairo_move_to(cr_, x, y);
    pango_cairo_show_layout(cr_, layout_);
    return h;
  }
  // A paragraph in the flow.
  void para(const std::string& text, const char* font, double gap_after = 3,
            PangoAlignment align = PANGO_ALIGN_LEFT) {
    const double w = kPageW - 2 * kMargin;
    const double h = measure(text, font, w, align);
    need(h);
    y_ += draw_text(text, font, kMargin, y_, w, align) + gap_after;
  }
  void need(double h) {
    if (y_ + h > kBottom) new_page();
  }
  void new_page() {
    footer();
    cairo_show_page(cr_);
    ++page_;
    y_ = kMargin;
  }
  void footer() {
    draw_text("Trang " + std::to_string(page_), "DejaVu Sans 8", kMargin, kPageH - kMargin,
              kPageW - 2 * kMargin, PANGO_ALIGN_CENTER);
  }
  void finish() {
    footer();
    cairo_show_page(cr_);
    cairo_surface_finish(surface_);
  }

  void table(const Table& t) {
    const double w = kPageW - 2 * kMargin;
    need(52);  // the title, the header and a first row stay together
    if (!t.title.empty()) para(t.title, "DejaVu Sans Bold 9.5", 2);
    const auto cols = t.header.size();
    // Each column at least as wide as its widest word (no word is broken), the rest of the line
    // shared by how much more each column's longest text would like.
    std::vector<double> least(cols, 0), natural(cols, 0);
    const auto consider = [&](std::size_t c, const std::string& text, const char* font) {
      natural[c] = std::max(natural[c], width_of(text, font) + 8);
      std::size_t at = 0;
      while (at <= text.size()) {
        const auto sp = text.find(' ', at);
        const auto word = text.substr(at, sp == std::string::npos ? std::string::npos : sp - at);
        least[c] = std::max(least[c], width_of(word, font) + 8);
        if (sp == std::string::npos) break;
        at = sp + 1;
      }
    };
    for (std::size_t c = 0; c < cols; ++c) {
      consider(c, t.header[c], "DejaVu Sans Bold 8");
      for (const auto& r : t.rows) {
        if (c < r.size()) consider(c, r[c], "DejaVu Sans 8");
      }
    }
    double sum_least = 0, sum_natural = 0;
    for (std::size_t c = 0; c < cols; ++c) {
      sum_least += least[c];
      sum_natural += natural[c];
    }
    std::vector<double> widths(cols);
    for (std::size_t c = 0; c < cols; ++c) {
      if (sum_natural <= w)
        widths[c] = natural[c] * w / sum_natural;
      else if (sum_least >= w)
        widths[c] = least[c] * w / sum_least;
      else
        widths[c] =
            least[c] + (w - sum_least) * (natural[c] - least[c]) / (sum_natural - sum_least);
    }
    std::function<void(const std::vector<std::string>&, bool)> row =
        [&](const std::vector<std::string>& cells, bool header) {
          const char* font = header ? "DejaVu Sans Bold 8" : "DejaVu Sans 8";
          double h = 0;
          for (std::size_t c = 0; c < cols; ++c)
            h = std::max(h, measure(c < cells.size() ? cells[c] : "", font, widths[c] - 6));
          h += 4;
          if (y_ + h > kBottom) {
            new_page();
            if (!header) row(t.header, true);  // a table run onto a new page repeats its header
          }
          double x = kMargin;
          for (std::size_t c = 0; c < cols; ++c) {
            if (header) {
              cairo_set_source_rgb(cr_, 0.92, 0.92, 0.92);
              cairo_rectangle(cr_, x, y_, widths[c], h);
              cairo_fill(cr_);
            }
            cairo_set_source_rgb(cr_, 0.6, 0.6, 0.6);
            cairo_set_line_width(cr_, 0.5);
            cairo_rectangle(cr_, x, y_, widths[c], h);
            cairo_stroke(cr_);
            draw_text(c < cells.size() ? cells[c] : "", font, x + 3, y_ + 2, widths[c] - 6);
            x += widths[c];
          }
          y_ += h;
        };
    row(t.header, true);
    for (const auto& r : t.rows) row(r, false);
    y_ += 6;
  }

  // Horizontal bars; values 0..max; those under `mark` in red.
  void bars(const std::vector<std::tuple<std::string, double, std::string>>& items, double max,
            double mark) {
    const double row = 13, label_w = 150, bar_w = kPageW - 2 * kMargin - label_w - 60;
    for (const auto& [label, value, text] : items) {
      need(row);
      draw_text(label, "DejaVu Sans 7.5", kMargin, y_ + 1, label_w - 6, PANGO_ALIGN_RIGHT);
      const double bw = max > 0 ? bar_w * std::clamp(value / max, 0.0, 1.0) : 0;
      if (mark > 0 && value < mark)
        cairo_set_source_rgb(cr_, 0.78, 0.16, 0.16);
      else
        cairo_set_source_rgb(cr_, 0.18, 0.49, 0.2);
      cairo_rectangle(cr_, kMargin + label_w, y_ + 2, bw, row - 4);
      cairo_fill(cr_);
      draw_text(text, "DejaVu Sans 7.5", kMargin + label_w + bw + 4, y_ + 1, 60);
      y_ += row;
    }
    y_ += 6;
  }

  double y_ = kMargin;

 private:
  cairo_surface_t* surface_;
  cairo_t* cr_;
  PangoLayout* layout_;
  int page_ = 1;
};

}  // namespace

std::expected<void, std::string> write_pdf(const ReportData& d, const std::string& path) {
  Pdf pdf(path);
  if (auto s = pdf.status(); !s.empty()) return std::unexpected("cannot write " + path + ": " + s);
  pdf.metadata(kTitle);
  pdf.para("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "DejaVu Sans Bold 10", 0, PANGO_ALIGN_CENTER);
  pdf.para("Độc lập - Tự do - Hạnh phúc", "DejaVu Sans 10", 14, PANGO_ALIGN_CENTER);
  pdf.para(kTitle, "DejaVu Sans Bold 13", 12, PANGO_ALIGN_CENTER);
  for (const auto& s : sections(d)) {
    pdf.need(60);  // a heading does not end a page
    pdf.para(s.heading, "DejaVu Sans Bold 11.5", 4);
    for (const auto& l : s.lines) pdf.para(l, "DejaVu Sans 9.5", 2);
    pdf.y_ += 3;
    if (s.chart == Section::Chart::uptime) {
      std::vector<std::tuple<std::string, double, std::string>> items;
      for (const auto& c : d.cameras)
        items.emplace_back(c.name, c.uptime.value_or(0), percent_vi(c.uptime));
      pdf.bars(items, 1.0, d.repair_below);
    }
    if (s.chart == Section::Chart::weeks) {
      std::vector<std::tuple<std::string, double, std::string>> items;
      double max = 0;
      for (const auto& [w, k] : d.events_by_week) max = std::max(max, static_cast<double>(k));
      for (const auto& [w, k] : d.events_by_week)
        items.emplace_back("Tuần " + day_vi(w), static_cast<double>(k), std::to_string(k));
      pdf.bars(items, max, 0);
    }
    for (const auto& t : s.tables) pdf.table(t);
  }
  pdf.need(110);
  const double y = pdf.y_ + 16;
  const double half = (kPageW - 2 * kMargin) / 2;
  pdf.draw_text("NGƯỜI LẬP BÁO CÁO\n(Ký, ghi rõ họ tên)\n\n\n\n" + d.prepared_by, "DejaVu Sans 9.5",
                kMargin, y, half, PANGO_ALIGN_CENTER);
  pdf.draw_text("TM. ỦY BAN NHÂN DÂN XÃ\n(Ký, đóng dấu)", "DejaVu Sans 9.5", kMargin + half, y,
                half, PANGO_ALIGN_CENTER);
  pdf.finish();
  if (auto s = pdf.status(); !s.empty()) return std::unexpected("cannot write " + path + ": " + s);
  return {};
}

std::expected<void, std::string> write_record_pdf(const std::string& manifest_json,
                                                  const std::string& manifest_sha256,
                                                  const std::string& place,
                                                  const std::string& path) {
  auto doc = record_doc(manifest_json, manifest_sha256, place);
  if (!doc) return std::unexpected(doc.error());
  Pdf pdf(path);
  if (auto s = pdf.status(); !s.empty()) return std::unexpected("cannot write " + path + ": " + s);
  pdf.metadata(kRecordTitle);
  pdf.para("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "DejaVu Sans Bold 10", 0, PANGO_ALIGN_CENTER);
  pdf.para("Độc lập - Tự do - Hạnh phúc", "DejaVu Sans 10", 14, PANGO_ALIGN_CENTER);
  pdf.para(kRecordTitle, "DejaVu Sans Bold 13", 10, PANGO_ALIGN_CENTER);
  for (const auto& [heading, lines] : doc->parts) {
    if (!heading.empty()) pdf.para(heading, "DejaVu Sans Bold 11", 3);
    for (const auto& l : lines) pdf.para(l, "DejaVu Sans 9.5", 2);
  }
  pdf.para("III. " + doc->files.title, "DejaVu Sans Bold 11", 3);
  Table files = doc->files;
  files.title = "";
  pdf.table(files);
  pdf.para("IV. Tính toàn vẹn của dữ liệu", "DejaVu Sans Bold 11", 3);
  // Monospaced, 8 pt: a 64-digit hash always fits one line (in 9 pt proportional type some
  // hashes were wider than the text column and lost their last digit to the next line).
  for (const auto& l : doc->integrity) pdf.para(l, "DejaVu Sans Mono 8", 2);
  pdf.para("Biên bản được lập thành 02 bản, mỗi bên giữ 01 bản.", "DejaVu Sans 9.5", 4);
  pdf.need(100);
  const double y = pdf.y_ + 12;
  const double third = (kPageW - 2 * kMargin) / 3;
  for (std::size_t i = 0; i < doc->signers.size(); ++i)
    pdf.draw_text(doc->signers[i] + "\n(Ký, ghi rõ họ tên)", "DejaVu Sans 8.5",
                  kMargin + third * static_cast<double>(i), y, third, PANGO_ALIGN_CENTER);
  pdf.finish();
  if (auto s = pdf.status(); !s.empty()) return std::unexpected("cannot write " + path + ": " + s);
  return {};
}

}  // namespace matthan::report
