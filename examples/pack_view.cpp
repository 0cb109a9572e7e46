// SPDX-License-Identifier: Apache-2.0
// pack_view: NaViT's Patch n' Pack on a batch of images, drawn as a PNG.
//   1. each image keeps its aspect ratio and gets a random resolution: its longer side drawn from
//      NaViT's truncated normal on [--min-side, --max-side], sides rounded to patch multiples;
//   2. continuous token dropping: a per-image rate u * d_max, u ~ Beta (mean --drop-mean);
//   3. greedy first-fit packing into rows of --row-len slots (at most --cap images per row);
//   4. prints the plan and writes a PNG of the packed batch: a title with the packing efficiency,
//      a legend, one block per packed row (slots wrapped 64 per line, padding grey), and below it
//      each image's patch grid with its dropped patches pale and hatched.
// With image files each patch shows its own pixels (the image resized to its sampled resolution
// with io::resize_bicubic) framed in the image's colour (--pixels, the default for files); with
// --sizes, --synthetic or --colours each image is one flat colour. The text is drawn with a small
// built-in 5 x 7 bitmap font.
//
// Usage: pack_view [FILE...] [--sizes HxW,HxW,...] [--synthetic] [--pixels | --colours] [--repeat N] [--seed N]
//                  [--patch P] [--min-side S] [--max-side S] [--drop-mean D] [--drop-max D]
//                  [--row-len L] [--cap C] [--out FILE.png]
// Without FILE or --sizes it reads the images in ../shared/data/images (relative to the current
// directory) when that folder exists, else uses a fixed list of synthetic sizes. Each input
// appears --repeat times (default 3 for files, 1 for sizes), each time with its own resolution
// and dropping draw, as in successive training batches. Bad input: one line on stderr, exit 1.
#include <tessera/core/random.hpp>
#include <tessera/io/image.hpp>
#include <tessera/pack/pack_plan.hpp>
#include <tessera/pack/resolution_sampler.hpp>
#include <tessera/pack/token_drop.hpp>

#include <stb_image_write.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace io = tessera::io;
namespace pack = tessera::pack;
using tessera::index_t;

constexpr char const* usage_text =
    "usage: pack_view [FILE...] [--sizes HxW,HxW,...] [--synthetic] [--pixels | --colours] [--repeat N] [--seed N]\n"
    "                 [--patch P] [--min-side S] [--max-side S] [--drop-mean D] [--drop-max D]\n"
    "                 [--row-len L] [--cap C] [--out FILE.png]\n"
    "With image files each patch is drawn with its own pixels (--pixels); --colours draws one flat colour\n"
    "per image instead. See docs/navit.md, 'The picture'.\n";

struct options {
  std::vector<fs::path> files;
  std::vector<tessera::image_size> sizes;
  bool synthetic = false;
  enum class fill_mode { automatic, pixels, colours } fill = fill_mode::automatic;  // automatic: pixels for files
  bool help = false;
  index_t repeat = 0;  // 0 = default
  std::uint64_t seed = 2023;
  index_t patch = 16;
  double min_side = 64, max_side = 384;
  double drop_mean = 0.25, drop_max = 0.5;
  index_t row_len = 768;
  index_t cap = 0;
  fs::path out = "pack_view.png";
};

/// Bad command lines are refused with one line (main prints it) and exit status 1.
[[noreturn]] void refuse(std::string const& why) { throw std::invalid_argument(why); }

long long parse_int(std::string const& flag, char const* text, long long lo, long long hi) {
  char* end = nullptr;
  long long const v = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || v < lo || v > hi)
    refuse(flag + " needs an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + text + "'");
  return v;
}

double parse_real(std::string const& flag, char const* text) {
  char* end = nullptr;
  double const v = std::strtod(text, &end);
  if (end == text || *end != '\0' || !std::isfinite(v)) refuse(flag + " needs a number, got '" + text + "'");
  return v;
}

std::vector<tessera::image_size> parse_sizes(std::string const& text) {
  std::vector<tessera::image_size> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t const comma = std::min(text.find(',', pos), text.size());
    std::string const item = text.substr(pos, comma - pos);
    std::size_t const x = item.find('x');
    if (x == std::string::npos) refuse("--sizes: '" + item + "' is not HxW");
    std::string const h = item.substr(0, x), w = item.substr(x + 1), flag = "--sizes: '" + item + "'";
    out.push_back({parse_int(flag, h.c_str(), 1, 1 << 24), parse_int(flag, w.c_str(), 1, 1 << 24)});
    pos = comma + 1;
  }
  return out;
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string const a = argv[i];
    auto const value = [&]() -> char const* {
      if (i + 1 >= argc) refuse(a + " needs a value");
      return argv[++i];
    };
    if (a == "--sizes") o.sizes = parse_sizes(value());
    else if (a == "--synthetic") o.synthetic = true;
    else if (a == "--pixels") o.fill = options::fill_mode::pixels;
    else if (a == "--colours") o.fill = options::fill_mode::colours;
    else if (a == "--repeat") o.repeat = parse_int(a, value(), 1, 1000);
    else if (a == "--seed") o.seed = static_cast<std::uint64_t>(parse_int(a, value(), 0, INT64_MAX));
    else if (a == "--patch") o.patch = parse_int(a, value(), 1, 1024);
    else if (a == "--min-side") o.min_side = parse_real(a, value());
    else if (a == "--max-side") o.max_side = parse_real(a, value());
    else if (a == "--drop-mean") o.drop_mean = parse_real(a, value());
    else if (a == "--drop-max") o.drop_max = parse_real(a, value());
    else if (a == "--row-len") o.row_len = parse_int(a, value(), 1, 65536);
    else if (a == "--cap") o.cap = parse_int(a, value(), 0, 65536);
    else if (a == "--out") o.out = value();
    else if (a == "--help" || a == "-h") o.help = true;
    else if (a.starts_with("-")) refuse("unknown option " + a + " (see --help)");
    else o.files.emplace_back(a);
  }
  if (!(o.min_side > 0 && o.min_side <= o.max_side && o.max_side <= 8192))
    refuse("--min-side and --max-side need 0 < min <= max <= 8192");
  if (!o.sizes.empty() && !o.files.empty()) refuse("give FILE... or --sizes, not both");
  return o;
}

/// A fixed list of photo-like sizes (height x width) for runs without image files.
std::vector<tessera::image_size> synthetic_sizes() {
  return {{480, 640}, {768, 1024}, {300, 300}, {200, 800}, {1080, 1920}, {640, 480},
          {256, 256}, {900, 1200}, {500, 333}, {1280, 720}, {150, 150},  {600, 900}};
}

// ---- a 5 x 7 bitmap font --------------------------------------------------------------------------

/// One glyph: 8 rows of 5 columns, top to bottom, '#' = ink. Rows 0..6 hold digits and the bodies
/// of letters (baseline under row 6); row 7 is for the descenders of g, j, p, q, y and ','.
struct glyph {
  char c;
  char const* rows;  // "..... ....." : 8 groups of 5, separated by one space
};

// clang-format off
constexpr std::array<glyph, 52> font = {{
  {' ', "..... ..... ..... ..... ..... ..... ..... ....."},
  {'0', ".###. #...# #..## #.#.# ##..# #...# .###. ....."},
  {'1', "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###. ....."},
  {'2', ".###. #...# ....# ...#. ..#.. .#... ##### ....."},
  {'3', "##### ...#. ..#.. ...#. ....# #...# .###. ....."},
  {'4', "...#. ..##. .#.#. #..#. ##### ...#. ...#. ....."},
  {'5', "##### #.... ####. ....# ....# #...# .###. ....."},
  {'6', "..##. .#... #.... ####. #...# #...# .###. ....."},
  {'7', "##### ....# ...#. ..#.. .#... .#... .#... ....."},
  {'8', ".###. #...# #...# .###. #...# #...# .###. ....."},
  {'9', ".###. #...# #...# .#### ....# ...#. .##.. ....."},
  {'a', "..... ..... .###. ....# .#### #...# .#### ....."},
  {'b', "#.... #.... #.##. ##..# #...# #...# ####. ....."},
  {'c', "..... ..... .###. #.... #.... #...# .###. ....."},
  {'d', "....# ....# .##.# #..## #...# #...# .#### ....."},
  {'e', "..... ..... .###. #...# ##### #.... .###. ....."},
  {'f', "..##. .#..# .#... ###.. .#... .#... .#... ....."},
  {'g', "..... ..... .#### #...# #...# .#### ....# .###."},
  {'h', "#.... #.... #.##. ##..# #...# #...# #...# ....."},
  {'i', "..#.. ..... .##.. ..#.. ..#.. ..#.. .###. ....."},
  {'j', "...#. ..... ..##. ...#. ...#. ...#. #..#. .##.."},
  {'k', "#.... #.... #..#. #.#.. ##... #.#.. #..#. ....."},
  {'l', ".##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###. ....."},
  {'m', "..... ..... ##.#. #.#.# #.#.# #.#.# #...# ....."},
  {'n', "..... ..... #.##. ##..# #...# #...# #...# ....."},
  {'o', "..... ..... .###. #...# #...# #...# .###. ....."},
  {'p', "..... ..... ####. #...# #...# ####. #.... #...."},
  {'q', "..... ..... .#### #...# #...# .#### ....# ....#"},
  {'r', "..... ..... #.##. ##..# #.... #.... #.... ....."},
  {'s', "..... ..... .###. #.... .###. ....# ####. ....."},
  {'t', ".#... .#... ###.. .#... .#... .#..# ..##. ....."},
  {'u', "..... ..... #...# #...# #...# #..## .##.# ....."},
  {'v', "..... ..... #...# #...# #...# .#.#. ..#.. ....."},
  {'w', "..... ..... #...# #...# #.#.# #.#.# .#.#. ....."},
  {'x', "..... ..... #...# .#.#. ..#.. .#.#. #...# ....."},
  {'y', "..... ..... #...# #...# #...# .#### ....# .###."},
  {'z', "..... ..... ##### ...#. ..#.. .#... ##### ....."},
  {'%', "##... ##..# ...#. ..#.. .#... #..## ...## ....."},
  {'.', "..... ..... ..... ..... ..... .##.. .##.. ....."},
  {',', "..... ..... ..... ..... ..... .##.. ..#.. .#..."},
  {':', "..... .##.. .##.. ..... .##.. .##.. ..... ....."},
  {'(', "...#. ..#.. .#... .#... .#... ..#.. ...#. ....."},
  {')', ".#... ..#.. ...#. ...#. ...#. ..#.. .#... ....."},
  {'-', "..... ..... ..... ##### ..... ..... ..... ....."},
  {'/', "..... ....# ...#. ..#.. .#... #.... ..... ....."},
  {'=', "..... ..... ##### ..... ##### ..... ..... ....."},
  {'>', ".#... ..#.. ...#. ....# ...#. ..#.. .#... ....."},
  {'+', "..... ..#.. ..#.. ##### ..#.. ..#.. ..... ....."},
  {'#', ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#. ....."},
  {'|', "..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#.."},
  {'\'', "..#.. ..#.. .#... ..... ..... ..... ..... ....."},
  {'?', ".###. #...# ....# ...#. ..#.. ..... ..#.. ....."},
}};
// clang-format on

/// The glyph of c (capitals drawn as small letters; anything else the font lacks as '?').
char const* glyph_rows(char c) {
  char const lower = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (glyph const& g : font)
    if (g.c == lower) return g.rows;
  return glyph_rows('?');
}

constexpr index_t text_scale = 2;                  // each font pixel is 2 x 2 picture pixels
constexpr index_t char_w = 6 * text_scale;         // 5 columns and one of spacing
constexpr index_t line_h = 8 * text_scale + 6;     // 8 rows and some leading

// ---- picture -------------------------------------------------------------------------------------

using rgb = std::array<std::uint8_t, 3>;
constexpr rgb black{0, 0, 0}, white{255, 255, 255}, ink{35, 35, 35}, padding_grey{170, 170, 170};

/// Well-separated colours: hues stepped by the golden ratio, HSV -> RGB.
rgb colour_of(index_t i) {
  double const h = std::fmod(0.07 + 0.61803398875 * static_cast<double>(i), 1.0) * 6.0;
  double const s = 0.65, v = 0.92;
  double const f = h - std::floor(h);
  double const p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  double r = v, g = t, b = p;
  switch (static_cast<int>(h)) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
  }
  auto const c = [](double x) { return static_cast<std::uint8_t>(std::lround(255.0 * x)); };
  return {c(r), c(g), c(b)};
}

rgb mix(rgb a, rgb b, double t) {
  rgb out{};
  for (std::size_t k = 0; k < 3; ++k)
    out[k] = static_cast<std::uint8_t>(std::lround((1 - t) * a[k] + t * b[k]));
  return out;
}

/// How one patch cell looks: its image's colour, and where the image's pixels come from.
struct patch_look {
  rgb colour;
  io::rgb_image const* tile = nullptr;  // the image resized to (grid_h x grid_w) cells; null = flat colour
  index_t row = 0, col = 0;             // the patch's place in its grid
  bool dropped = false;                 // pale and hatched
  bool framed = true;                   // a 1-pixel border (darker colour, or the image's colour over pixels)
};

class canvas {
 public:
  canvas(index_t w, index_t h) : w_(w), h_(h), px_(static_cast<std::size_t>(w * h * 3), 255) {}
  void set(index_t x, index_t y, rgb c) {
    if (x < 0 || y < 0 || x >= w_ || y >= h_) return;
    auto* p = &px_[static_cast<std::size_t>((y * w_ + x) * 3)];
    p[0] = c[0], p[1] = c[1], p[2] = c[2];
  }
  void fill(index_t x, index_t y, index_t w, index_t h, rgb c) {
    for (index_t dy = 0; dy < h; ++dy)
      for (index_t dx = 0; dx < w; ++dx) set(x + dx, y + dy, c);
  }
  /// A patch cell of side `size` at (x, y).
  void cell(index_t x, index_t y, index_t size, patch_look const& look) {
    rgb const edge = look.tile ? look.colour : mix(look.colour, black, 0.35), hatch = mix(look.colour, black, 0.3);
    for (index_t dy = 0; dy < size; ++dy)
      for (index_t dx = 0; dx < size; ++dx) {
        rgb c = look.colour;
        if (look.tile) {
          auto const* p = look.tile->data() +
                          ((look.row * size + dy) * look.tile->width() + look.col * size + dx) * 3;
          c = {p[0], p[1], p[2]};
        }
        if (look.dropped) c = (dx + dy) % 3 == 0 ? hatch : mix(c, white, 0.7);
        bool const border = dx == 0 || dy == 0 || dx == size - 1 || dy == size - 1;
        set(x + dx, y + dy, look.framed && border ? edge : c);
      }
  }
  /// Writes `text` with its top-left corner at (x, y) in the 5 x 7 font.
  void text(index_t x, index_t y, std::string_view text, rgb c) {
    for (char ch : text) {
      char const* rows = glyph_rows(ch);
      for (index_t r = 0; r < 8; ++r)
        for (index_t k = 0; k < 5; ++k)
          if (rows[r * 6 + k] == '#') fill(x + k * text_scale, y + r * text_scale, text_scale, text_scale, c);
      x += char_w;
    }
  }
  bool write_png(fs::path const& path) const {
    return stbi_write_png(path.string().c_str(), static_cast<int>(w_), static_cast<int>(h_), 3, px_.data(),
                          static_cast<int>(w_ * 3)) != 0;
  }

 private:
  index_t w_, h_;
  std::vector<std::uint8_t> px_;
};

/// Boxes laid out left to right, wrapping to a new line where one would pass `width`: the top-left
/// corner of each box (relative to the flow's origin) and the height of the whole flow.
struct flow {
  std::vector<std::array<index_t, 2>> at;
  index_t height = 0;
};
flow flow_boxes(std::vector<std::array<index_t, 2>> const& sizes, index_t width, index_t gap_x, index_t gap_y) {
  flow f;
  index_t x = 0, y = 0, tallest = 0;
  for (auto const& [w, h] : sizes) {
    if (x > 0 && x + w > width) {
      x = 0;
      y += tallest + gap_y;
      tallest = 0;
    }
    f.at.push_back({x, y});
    x += w + gap_x;
    tallest = std::max(tallest, h);
  }
  f.height = sizes.empty() ? 0 : y + tallest;
  return f;
}

/// The words of `text` (split at spaces), to be laid out by flow_words.
std::vector<std::string> words_of(std::string const& text) {
  std::vector<std::string> out;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t const end = std::min(text.find(' ', pos), text.size());
    if (end > pos) out.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}
/// Words as a flow within `width` pixels: one box per word, a space apart, lines of text.
flow flow_words(std::vector<std::string> const& words, index_t width) {
  std::vector<std::array<index_t, 2>> sizes;
  for (auto const& w : words) sizes.push_back({static_cast<index_t>(w.size()) * char_w, line_h});
  return flow_boxes(sizes, width, char_w, 0);
}

std::string plural(index_t n, char const* noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

std::string percent(double fraction) {
  std::array<char, 32> buf{};
  std::snprintf(buf.data(), buf.size(), "%.1f%%", 100.0 * fraction);
  return buf.data();
}

/// What the picture needs besides the plan: the kept patches of each image and, for pixels, each
/// image's decoded file and sampled resolution.
struct picture_input {
  pack::pack_plan const& plan;
  pack::keep_sets const& keep;
  std::vector<io::rgb_image const*> const& pictures;  // per image of the plan; empty: flat colours
  std::vector<tessera::image_size> const& resolutions;
};

void draw(picture_input const& in, fs::path const& path) {
  constexpr index_t per_line = 64, gap = 12, margin = 12;
  pack::pack_plan const& plan = in.plan;
  bool const pixels = !in.pictures.empty();
  // Cells of the packed rows and of the image grids: a 16-pixel patch at its own size in the rows
  // (other patch sizes are resized to 16), half that below.
  index_t const slot_px = pixels ? 16 : 8, grid_px = slot_px / 2, frame = pixels ? 2 : 0;
  index_t const inner_w = per_line * slot_px, width = 2 * margin + inner_w;
  index_t const lines_per_row = (plan.row_len() + per_line - 1) / per_line;
  index_t const row_block_h = line_h + lines_per_row * slot_px + gap;  // label, slots, gap

  // Text: the title and the heading of the image grids.
  index_t n_patches = 0;
  for (index_t i = 0; i < plan.n_images(); ++i) n_patches += plan.grid(i).n_patches();
  double const dropped = n_patches == 0 ? 0.0 : 1.0 - static_cast<double>(plan.n_real_tokens()) / n_patches;
  std::vector<std::string> const title = words_of(
      plural(plan.n_images(), "image") + " -> " + plural(plan.n_rows(), "row") + " x " + std::to_string(plan.row_len()) +
      " slots, " + percent(plan.efficiency()) + " hold kept tokens (" + percent(dropped) + " of patches dropped)");
  std::vector<std::string> const heading = words_of(
      pixels ? "each image at half its sampled resolution, cut into patches:" : "each image's patch grid:");
  flow const title_flow = flow_words(title, inner_w), heading_flow = flow_words(heading, inner_w);

  // Legend: a sample cell, then its words, one box per entry.
  struct entry {
    patch_look look;
    bool starts = false;  // the black bar that marks an image's first slot
    std::string text;
  };
  rgb const c0 = colour_of(0);
  std::vector<entry> const legend = {
      {{c0}, false, pixels ? "kept patch, framed in its image's colour" : "kept patch, one colour per image"},
      {{c0}, true, "first slot of an image"},
      {{c0, nullptr, 0, 0, true}, false, "dropped patch"},
      {{padding_grey}, false, "padding"}};
  std::vector<std::array<index_t, 2>> legend_sizes;
  for (auto const& e : legend) legend_sizes.push_back({2 * line_h + static_cast<index_t>(e.text.size()) * char_w, line_h});
  flow const legend_flow = flow_boxes(legend_sizes, inner_w, 2 * char_w, 4);

  // The image grids: a flow of (framed) boxes.
  std::vector<std::array<index_t, 2>> grid_sizes;
  for (index_t i = 0; i < plan.n_images(); ++i)
    grid_sizes.push_back({plan.grid(i).w * grid_px + 2 * frame, plan.grid(i).h * grid_px + 2 * frame});
  flow const grid_flow = flow_boxes(grid_sizes, inner_w, gap, gap);

  index_t const title_y = margin, legend_y = title_y + title_flow.height + gap / 2;
  index_t const rows_y = legend_y + legend_flow.height + gap;
  index_t const heading_y = rows_y + plan.n_rows() * row_block_h, grids_y = heading_y + heading_flow.height + 4;
  index_t const height = grids_y + grid_flow.height + margin;
  if (width * height > (index_t{1} << 25))
    throw std::runtime_error("the picture would be " + std::to_string(width) + " x " + std::to_string(height) +
                             " pixels (more than 2^25); draw fewer or smaller images");
  canvas c(width, height);

  // Pixels: each image resized (Pillow-exact bicubic) to its sampled resolution, the pixels the
  // model would see, then to the picture's cells (a copy where the sizes agree).
  std::vector<io::rgb_image> row_tiles, grid_tiles;
  for (std::size_t i = 0; i < in.pictures.size(); ++i) {
    pack::patch_grid const g = plan.grid(static_cast<index_t>(i));
    io::rgb_image const seen = io::resize_bicubic(*in.pictures[i], in.resolutions[i].height, in.resolutions[i].width);
    row_tiles.push_back(io::resize_bicubic(seen, g.h * slot_px, g.w * slot_px));
    grid_tiles.push_back(io::resize_bicubic(seen, g.h * grid_px, g.w * grid_px));
  }

  for (std::size_t k = 0; k < title.size(); ++k)
    c.text(margin + title_flow.at[k][0], title_y + title_flow.at[k][1], title[k], ink);
  for (std::size_t k = 0; k < legend.size(); ++k) {
    index_t const x = margin + legend_flow.at[k][0], y = legend_y + legend_flow.at[k][1];
    index_t const s = line_h - 6;  // the sample cell, as tall as a capital
    c.cell(x, y, s, legend[k].look);
    if (legend[k].starts) c.fill(x, y, 3, s, black);
    c.text(x + s + char_w / 2, y, legend[k].text, ink);
  }

  // Packed rows: a label line, then slot k of row r at line k / per_line, column k % per_line.
  for (index_t r = 0; r < plan.n_rows(); ++r) {
    index_t used = 0;
    for (std::int32_t img : plan.images_of_row(r)) used += plan.n_kept(img);
    c.text(margin, rows_y + r * row_block_h,
           "row " + std::to_string(r) + ": " + plural(static_cast<index_t>(plan.images_of_row(r).size()), "image") +
               ", " + std::to_string(used) + " of " + std::to_string(plan.row_len()) + " slots",
           ink);
  }
  for (index_t s = 0; s < plan.n_slots(); ++s) {
    index_t const r = s / plan.row_len(), k = s % plan.row_len();
    index_t const px = margin + (k % per_line) * slot_px;
    index_t const py = rows_y + r * row_block_h + line_h + (k / per_line) * slot_px;
    std::int32_t const img = plan.image_id()[static_cast<std::size_t>(s)];
    if (img < 0) {
      c.cell(px, py, slot_px, {padding_grey});
      continue;
    }
    io::rgb_image const* tile = pixels ? &row_tiles[static_cast<std::size_t>(img)] : nullptr;
    c.cell(px, py, slot_px, {colour_of(img), tile, plan.coords()(s, 0), plan.coords()(s, 1)});
    if (s == plan.slot_begin(img)) c.fill(px, py, 2, slot_px, black);
  }

  // Image grids: every patch, the dropped ones pale and hatched; in pixels mode a frame in the
  // image's colour around the whole grid and no border per patch (the cells are small).
  for (std::size_t k = 0; k < heading.size(); ++k)
    c.text(margin + heading_flow.at[k][0], heading_y + heading_flow.at[k][1], heading[k], ink);
  for (index_t i = 0; i < plan.n_images(); ++i) {
    auto const iu = static_cast<std::size_t>(i);
    pack::patch_grid const g = plan.grid(i);
    std::vector<bool> kept(static_cast<std::size_t>(g.n_patches()), in.keep.per_image.empty());
    if (!in.keep.per_image.empty())
      for (std::int32_t k : in.keep.per_image[iu]) kept[static_cast<std::size_t>(k)] = true;
    index_t const x0 = margin + grid_flow.at[iu][0], y0 = grids_y + grid_flow.at[iu][1];
    c.fill(x0, y0, g.w * grid_px + 2 * frame, g.h * grid_px + 2 * frame, colour_of(i));
    for (index_t k = 0; k < g.n_patches(); ++k)
      c.cell(x0 + frame + (k % g.w) * grid_px, y0 + frame + (k / g.w) * grid_px, grid_px,
             {colour_of(i), pixels ? &grid_tiles[iu] : nullptr, k / g.w, k % g.w,
              !kept[static_cast<std::size_t>(k)], !pixels});
  }
  if (!c.write_png(path)) throw std::runtime_error("cannot write " + path.string());
}

int run(options o) {
  if (o.help) {
    std::fputs(usage_text, stdout);
    return 0;
  }
  // Inputs: names, sizes and (for pixels) the decoded images.
  std::vector<std::string> names;
  std::vector<tessera::image_size> sizes;
  std::vector<io::rgb_image> images;
  if (o.sizes.empty() && o.files.empty() && !o.synthetic) {
    fs::path const shared = fs::path("..") / "shared" / "data" / "images";
    std::error_code ec;
    if (fs::is_directory(shared, ec)) {
      for (auto const& e : fs::directory_iterator(shared))
        if (e.is_regular_file()) o.files.push_back(e.path());
      std::sort(o.files.begin(), o.files.end());
    }
  }
  bool const from_files = !o.files.empty();
  if (o.fill == options::fill_mode::pixels && !from_files) refuse("--pixels needs image files");
  bool const pixels = from_files && o.fill != options::fill_mode::colours;
  for (auto const& f : o.files) {
    io::rgb_image img = io::load_image(f);
    names.push_back(f.filename().string());
    sizes.push_back({img.height(), img.width()});
    if (pixels) images.push_back(std::move(img));
  }
  if (!from_files) {
    sizes = o.sizes.empty() ? synthetic_sizes() : o.sizes;
    for (auto const& s : sizes) names.push_back(std::to_string(s.height) + "x" + std::to_string(s.width));
  }
  index_t const repeat = o.repeat > 0 ? o.repeat : (from_files ? 3 : 1);

  // 1. Resolutions: image j (of the repeated list) draws from stream j of the seed.
  pack::side_truncated_normal const side{o.min_side, o.max_side, -0.5, 1.0};
  std::vector<pack::patch_grid> grids;
  std::vector<std::size_t> source;  // index into sizes / names / images
  std::vector<tessera::image_size> targets;
  for (index_t rep = 0; rep < repeat; ++rep)
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      tessera::rng r(o.seed, static_cast<std::uint64_t>(grids.size()));
      tessera::image_size const t = pack::sample_resolution(sizes[i].height, sizes[i].width, side, o.patch, r);
      grids.push_back({1, t.height / o.patch, t.width / o.patch});
      targets.push_back(t);
      source.push_back(i);
    }
  // 2. Token dropping (seed + 1: independent of the resolution draws).
  pack::keep_sets const keep = pack::make_keep_sets(grids, pack::drop_beta{o.drop_mean, o.drop_max, 0.3}, o.seed + 1);
  // 3. Packing. An image must fit in one row; say which one does not, and what to change.
  for (std::size_t i = 0; i < grids.size(); ++i) {
    auto const kept = keep.per_image.empty() ? grids[i].n_patches() : std::ssize(keep.per_image[i]);
    if (kept > o.row_len)
      refuse("image " + std::to_string(i) + " (" + names[source[i]] + " at " + std::to_string(targets[i].height) +
             "x" + std::to_string(targets[i].width) + ") keeps " + std::to_string(kept) + " tokens, more than --row-len " +
             std::to_string(o.row_len) + ": raise --row-len or lower --max-side");
  }
  pack::pack_plan const plan =
      pack::pack_plan::make(grids, {pack::pack_mode::fixed_rows, o.row_len, o.cap}, &keep);

  std::printf("pack_view: %zu images (%s), patch %lld, side ~ truncated N(-0.5, 1) on [%g, %g], "
              "drop rate ~ %g * Beta(mean %g), seed %llu\n",
              grids.size(), from_files ? "files" : "sizes", static_cast<long long>(o.patch), o.min_side, o.max_side,
              o.drop_max, o.drop_mean / o.drop_max, static_cast<unsigned long long>(o.seed));
  std::printf("%4s  %-28s %11s  %11s  %7s  %5s  %5s  %3s\n", "img", "source", "size", "resized", "grid", "tokens",
              "kept", "row");
  for (index_t i = 0; i < plan.n_images(); ++i) {
    auto const iu = static_cast<std::size_t>(i);
    pack::patch_grid const g = plan.grid(i);
    tessera::image_size const from = sizes[source[iu]];
    std::string const sz = std::to_string(from.height) + "x" + std::to_string(from.width);
    std::string const rs = std::to_string(targets[iu].height) + "x" + std::to_string(targets[iu].width);
    std::string const gr = std::to_string(g.h) + "x" + std::to_string(g.w);
    std::printf("%4lld  %-28.28s %11s  %11s  %7s  %5lld  %5lld  %3lld\n", static_cast<long long>(i),
                names[source[iu]].c_str(), sz.c_str(), rs.c_str(), gr.c_str(), static_cast<long long>(g.n_patches()),
                static_cast<long long>(plan.n_kept(i)), static_cast<long long>(plan.row_of_image(i)));
  }
  std::printf("packed: %lld rows x %lld slots, images per row:", static_cast<long long>(plan.n_rows()),
              static_cast<long long>(plan.row_len()));
  for (index_t r = 0; r < plan.n_rows(); ++r) std::printf(" %zu", plan.images_of_row(r).size());
  std::printf("\nreal tokens %lld of %lld slots: efficiency %.2f %% (padding %.2f %%), %lld sequences\n",
              static_cast<long long>(plan.n_real_tokens()), static_cast<long long>(plan.n_slots()),
              100.0 * plan.efficiency(), 100.0 * (1.0 - plan.efficiency()),
              static_cast<long long>(plan.seqs().n_seqs()));

  // 4. The picture.
  std::vector<io::rgb_image const*> pictures;
  for (std::size_t i = 0; pixels && i < grids.size(); ++i) pictures.push_back(&images[source[i]]);
  draw({plan, keep, pictures, targets}, o.out);
  std::printf("picture: %s\n", o.out.string().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (std::exception const& e) {
    std::fprintf(stderr, "pack_view: %s\n", e.what());
    return 1;
  }
}
