// The XLSX (libxlsxwriter): numbers as numbers (shares with a percent format, hours as
// decimals), one sheet per part, a bar chart of uptime.
#include <xlsxwriter.h>

#include "format.hpp"

namespace matthan::report {
namespace {

lxw_row_t to_row(std::size_t r) {
  return static_cast<lxw_row_t>(r);
}

}  // namespace

std::expected<void, std::string> write_xlsx(const ReportData& d, const std::string& path) {
  lxw_workbook* wb = workbook_new(path.c_str());
  if (wb == nullptr) return std::unexpected("cannot create " + path);
  // libxlsxwriter's properties take char*; it copies them.
  std::string title_text = kTitle, author = d.prepared_by;
  lxw_doc_properties props{};
  props.title = title_text.data();
  props.author = author.data();
  workbook_set_properties(wb, &props);
  lxw_format* bold = workbook_add_format(wb);
  format_set_bold(bold);
  lxw_format* title = workbook_add_format(wb);
  format_set_bold(title);
  format_set_font_size(title, 14);
  lxw_format* pct = workbook_add_format(wb);
  format_set_num_format(pct, "0.00%");
  lxw_format* hours = workbook_add_format(wb);
  format_set_num_format(hours, "0.00");

  const auto put_opt = [&](lxw_worksheet* ws, lxw_row_t r, lxw_col_t c, std::optional<double> v) {
    if (v)
      worksheet_write_number(ws, r, c, *v, pct);
    else
      worksheet_write_blank(ws, r, c, nullptr);
  };

  // Summary
  lxw_worksheet* sum = workbook_add_worksheet(wb, "Tổng hợp");
  worksheet_set_column(sum, 0, 0, 48, nullptr);
  worksheet_set_column(sum, 1, 3, 16, nullptr);
  worksheet_write_string(sum, 0, 0, kTitle, title);
  std::size_t r = 2;
  const auto all = sections(d);
  for (const auto& line : all.front().lines)
    worksheet_write_string(sum, to_row(r++), 0, line.c_str(), nullptr);
  ++r;
  worksheet_write_string(sum, to_row(r), 0, "Chỉ tiêu", bold);
  worksheet_write_string(sum, to_row(r), 1, "Kỳ này", bold);
  worksheet_write_string(sum, to_row(r), 2, "Kỳ trước", bold);
  ++r;
  const auto num_row = [&](const char* label, double now, double before) {
    worksheet_write_string(sum, to_row(r), 0, label, nullptr);
    worksheet_write_number(sum, to_row(r), 1, now, nullptr);
    worksheet_write_number(sum, to_row(r), 2, before, nullptr);
    ++r;
  };
  num_row("Số camera", d.totals.cameras, d.previous.cameras);
  worksheet_write_string(sum, to_row(r), 0, "Tỷ lệ hoạt động chung", nullptr);
  put_opt(sum, to_row(r), 1, d.totals.uptime);
  put_opt(sum, to_row(r), 2, d.previous.uptime);
  ++r;
  num_row("Sự kiện", static_cast<double>(d.totals.events), static_cast<double>(d.previous.events));
  num_row("Sự kiện xác nhận đúng", static_cast<double>(d.totals.confirmed),
          static_cast<double>(d.previous.confirmed));
  num_row("Báo động giả", static_cast<double>(d.totals.false_alarms),
          static_cast<double>(d.previous.false_alarms));
  num_row("Chưa xem xét", static_cast<double>(d.totals.unreviewed),
          static_cast<double>(d.previous.unreviewed));
  num_row("Lần trích xuất", static_cast<double>(d.totals.extractions),
          static_cast<double>(d.previous.extractions));
  num_row("Vụ việc", static_cast<double>(d.totals.cases), static_cast<double>(d.previous.cases));
  num_row("Vụ việc camera giúp làm rõ", static_cast<double>(d.totals.cases_helped),
          static_cast<double>(d.previous.cases_helped));
  ++r;
  worksheet_write_string(sum, to_row(r), 0, "Camera trực tuyến cuối kỳ", nullptr);
  worksheet_write_number(sum, to_row(r++), 1, d.online_at_end, nullptr);
  worksheet_write_string(sum, to_row(r), 0, "Tỷ lệ thời gian có ghi hình", nullptr);
  put_opt(sum, to_row(r++), 1, d.coverage);
  worksheet_write_string(sum, to_row(r), 0, "Máy chủ ngừng giám sát (giờ)", nullptr);
  worksheet_write_number(sum, to_row(r++), 1,
                         static_cast<double>(d.server_not_monitored_us) / 3.6e9, hours);

  // Cameras
  lxw_worksheet* cam = workbook_add_worksheet(wb, "Camera");
  const char* head[] = {"Mã",
                        "Tên",
                        "Thôn",
                        "Chủ sở hữu",
                        "Hãng, model",
                        "Ngày lắp đặt (tháo dỡ)",
                        "Giám sát (giờ)",
                        "Trực tuyến (giờ)",
                        "Tỷ lệ hoạt động",
                        "Không giám sát (giờ)",
                        "Đã ghi (giờ)",
                        "Tỷ lệ ghi hình",
                        "Sự kiện",
                        "Trạng thái cuối kỳ"};
  for (lxw_col_t c = 0; c < 14; ++c) worksheet_write_string(cam, 0, c, head[c], bold);
  worksheet_set_column(cam, 0, 13, 15, nullptr);
  for (std::size_t i = 0; i < d.cameras.size(); ++i) {
    const auto& c = d.cameras[i];
    const auto row = to_row(i + 1);
    worksheet_write_string(cam, row, 0, c.id.c_str(), nullptr);
    worksheet_write_string(cam, row, 1, c.name.c_str(), nullptr);
    worksheet_write_string(cam, row, 2, c.hamlet_name.c_str(), nullptr);
    worksheet_write_string(cam, row, 3, owner_label(c.owner).c_str(), nullptr);
    worksheet_write_string(cam, row, 4, (c.brand + (c.model.empty() ? "" : " " + c.model)).c_str(),
                           nullptr);
    worksheet_write_string(
        cam, row, 5,
        (c.installed + (c.removed.empty() ? "" : " (tháo dỡ " + c.removed + ")")).c_str(), nullptr);
    worksheet_write_number(cam, row, 6, static_cast<double>(c.monitored_us) / 3.6e9, hours);
    worksheet_write_number(cam, row, 7, static_cast<double>(c.online_us) / 3.6e9, hours);
    put_opt(cam, row, 8, c.uptime);
    worksheet_write_number(cam, row, 9, static_cast<double>(c.not_monitored_us) / 3.6e9, hours);
    worksheet_write_number(cam, row, 10, static_cast<double>(c.recorded_us) / 3.6e9, hours);
    put_opt(cam, row, 11, c.coverage);
    worksheet_write_number(cam, row, 12, static_cast<double>(c.events), nullptr);
    worksheet_write_string(cam, row, 13, state_label(c.state_at_end).c_str(), nullptr);
  }
  if (!d.cameras.empty()) {
    lxw_chart* chart = workbook_add_chart(wb, LXW_CHART_BAR);
    lxw_chart_series* series = chart_add_series(chart, nullptr, nullptr);
    const auto last = to_row(d.cameras.size());
    chart_series_set_categories(series, "Camera", 1, 1, last, 1);
    chart_series_set_values(series, "Camera", 1, 8, last, 8);
    chart_title_set_name(chart, "Tỷ lệ hoạt động");
    chart_legend_set_position(chart, LXW_CHART_LEGEND_NONE);
    worksheet_insert_chart(cam, to_row(d.cameras.size() + 2), 1, chart);
  }

  // Uptime per local day: all cameras, then one column per camera (blank: nothing monitored).
  lxw_worksheet* daily = workbook_add_worksheet(wb, "Theo ngày");
  worksheet_write_string(daily, 0, 0, "Ngày", bold);
  worksheet_write_string(daily, 0, 1, "Tất cả camera", bold);
  for (std::size_t i = 0; i < d.cameras.size(); ++i)
    worksheet_write_string(daily, 0, static_cast<lxw_col_t>(i + 2), d.cameras[i].id.c_str(), bold);
  for (std::size_t k = 0; k < d.days.size(); ++k) {
    const auto row = to_row(k + 1);
    worksheet_write_string(daily, row, 0, d.days[k].c_str(), nullptr);
    put_opt(daily, row, 1, d.daily_uptime[k]);
    for (std::size_t i = 0; i < d.cameras.size(); ++i)
      put_opt(daily, row, static_cast<lxw_col_t>(i + 2), d.cameras[i].daily_uptime[k]);
  }

  // Events, extractions, cases: label and count.
  const auto counts = [&](const char* name, const std::vector<Table>& tables) {
    lxw_worksheet* ws = workbook_add_worksheet(wb, name);
    worksheet_set_column(ws, 0, 0, 36, nullptr);
    worksheet_set_column(ws, 1, 1, 14, nullptr);
    std::size_t row = 0;
    for (const auto& t : tables) {
      worksheet_write_string(ws, to_row(row++), 0, t.title.c_str(), bold);
      for (const auto& cells : t.rows) {
        worksheet_write_string(ws, to_row(row), 0, cells[0].c_str(), nullptr);
        worksheet_write_number(ws, to_row(row), 1, std::stod(cells[1]), nullptr);
        ++row;
      }
      ++row;
    }
  };
  counts("Sự kiện", {all[4].tables[0], all[4].tables[1], all[5].tables[0]});
  counts("Trích xuất", all[6].tables);
  counts("Vụ việc", all[7].tables);
  const auto err = workbook_close(wb);
  if (err != LXW_NO_ERROR)
    return std::unexpected("cannot write " + path + ": " + lxw_strerror(err));
  return {};
}

}  // namespace matthan::report
