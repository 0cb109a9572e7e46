// SPDX-License-Identifier: Apache-2.0
// navit_packing: NaViT's Patch n' Pack on a batch of images, end to end on the sizes only.
//   1. each image keeps its aspect ratio and gets a random resolution: its longer side drawn from
//      NaViT's truncated normal on [--min-side, --max-side], sides rounded to patch multiples;
//   2. continuous token dropping: a per-image rate u * d_max, u ~ Beta (mean --drop-mean);
//   3. greedy first-fit packing into rows of --row-len slots (at most --cap images per row);
//   4. prints the plan and writes a PNG picture of the packed batch: one block per packed row
//      (slots wrapped 64 per line; each image one colour, padding grey), and below it each image's
//      patch grid (kept patches in the image's colour, dropped patches pale and hatched).
// The picture shows colours only, never image pixels.
//
// Usage: navit_packing [FILE...] [--sizes HxW,HxW,...] [--synthetic] [--repeat N] [--seed N]
//                      [--patch P] [--min-side S] [--max-side S] [--drop-mean D] [--drop-max D]
//                      [--row-len L] [--cap C] [--out FILE.png]
// Without FILE or --sizes it reads the sizes of the images in ../shared/data/images (relative to
// the current directory) when that folder exists, else uses a fixed list of synthetic sizes.
// Each input appears --repeat times (default 3 for files, 1 for sizes), each time with its own
// resolution and dropping draw, as in successive training batches.
#include <tessera/io/image.hpp>
#include <tessera/pack/pack_plan.hpp>
#include <tessera/core/random.hpp>
#include <tessera/pack/resolution_sampler.hpp>
#include <tessera/pack/token_drop.hpp>

#include <stb_image_write.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace io = tessera::io;
namespace pack = tessera::pack;
using tessera::index_t;

struct options {
  std::vector<fs::path> files;
  std::vector<tessera::image_size> sizes;
  bool synthetic = false;
  index_t repeat = 0;  // 0 = default
  std::uint64_t seed = 2023;
  index_t patch = 16;
  double min_side = 64, max_side = 384;
  double drop_mean = 0.25, drop_max = 0.5;
  index_t row_len = 768;
  index_t cap = 0;
  fs::path out = "navit_packing.png";
};

[[noreturn]] void usage(std::string const& why) {
  std::fprintf(stderr,
               "navit_packing: %s\n"
               "usage: navit_packing [FILE...] [--sizes HxW,HxW,...] [--synthetic] [--repeat N] [--seed N]\n"
               "                     [--patch P] [--min-side S] [--max-side S] [--drop-mean D] [--drop-max D]\n"
               "                     [--row-len L] [--cap C] [--out FILE.png]\n",
               why.c_str());
  std::exit(2);
}

long long parse_int(std::string_view flag, char const* text, long long lo) {
  char* end = nullptr;
  long long const v = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || v < lo) usage(std::string(flag) + " needs an integer >= " + std::to_string(lo));
  return v;
}

double parse_real(std::string_view flag, char const* text) {
  char* end = nullptr;
  double const v = std::strtod(text, &end);
  if (end == text || *end != '\0' || !std::isfinite(v)) usage(std::string(flag) + " needs a number");
  return v;
}

std::vector<tessera::image_size> parse_sizes(std::string const& text) {
  std::vector<tessera::image_size> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t const comma = std::min(text.find(',', pos), text.size());
    std::string const item = text.substr(pos, comma - pos);
    std::size_t const x = item.find('x');
    if (x == std::string::npos) usage("--sizes: '" + item + "' is not HxW");
    std::string const h = item.substr(0, x), w = item.substr(x + 1);
    out.push_back({parse_int("--sizes", h.c_str(), 1), parse_int("--sizes", w.c_str(), 1)});
    pos = comma + 1;
  }
  return out;
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view const a = argv[i];
    auto const value = [&]() -> char const* {
      if (i + 1 >= argc) usage(std::string(a) + " needs a value");
      return argv[++i];
    };
    if (a == "--sizes") o.sizes = parse_sizes(value());
    else if (a == "--synthetic") o.synthetic = true;
    else if (a == "--repeat") o.repeat = parse_int(a, value(), 1);
    else if (a == "--seed") o.seed = static_cast<std::uint64_t>(parse_int(a, value(), 0));
    else if (a == "--patch") o.patch = parse_int(a, value(), 1);
    else if (a == "--min-side") o.min_side = parse_real(a, value());
    else if (a == "--max-side") o.max_side = parse_real(a, value());
    else if (a == "--drop-mean") o.drop_mean = parse_real(a, value());
    else if (a == "--drop-max") o.drop_max = parse_real(a, value());
    else if (a == "--row-len") o.row_len = parse_int(a, value(), 1);
    else if (a == "--cap") o.cap = parse_int(a, value(), 0);
    else if (a == "--out") o.out = value();
    else if (a == "--help" || a == "-h") usage("help");
    else if (a.starts_with("--")) usage("unknown option " + std::string(a));
    else o.files.emplace_back(a);
  }
  // Keep the picture (8 x 8 pixels per slot) and the draws to sane sizes.
  if (o.row_len > 65536) usage("--row-len must be at most 65536");
  if (o.patch > 1024) usage("--patch must be at most 1024");
  if (!(o.min_side > 0 && o.min_side <= o.max_side && o.max_side <= 8192))
    usage("--min-side and --max-side need 0 < min <= max <= 8192");
  return o;
}

/// A fixed list of photo-like sizes (height x width) for runs without image files.
std::vector<tessera::image_size> synthetic_sizes() {
  return {{480, 640}, {768, 1024}, {300, 300}, {200, 800}, {1080, 1920}, {640, 480},
          {256, 256}, {900, 1200}, {500, 333}, {1280, 720}, {150, 150},  {600, 900}};
}

// ---- picture -------------------------------------------------------------------------------------

using rgb = std::array<std::uint8_t, 3>;

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

class canvas {
 public:
  canvas(index_t w, index_t h) : w_(w), h_(h), px_(static_cast<std::size_t>(w * h * 3), 255) {}
  void set(index_t x, index_t y, rgb c) {
    if (x < 0 || y < 0 || x >= w_ || y >= h_) return;
    auto* p = &px_[static_cast<std::size_t>((y * w_ + x) * 3)];
    p[0] = c[0], p[1] = c[1], p[2] = c[2];
  }
  /// A cell of side `size` at (x, y): filled, a 1-pixel darker border, optionally hatched.
  void cell(index_t x, index_t y, index_t size, rgb fill, bool hatched = false) {
    rgb const edge = mix(fill, {0, 0, 0}, 0.35), hatch = mix(fill, {0, 0, 0}, 0.3);
    for (index_t dy = 0; dy < size; ++dy)
      for (index_t dx = 0; dx < size; ++dx) {
        bool const border = dx == 0 || dy == 0 || dx == size - 1 || dy == size - 1;
        set(x + dx, y + dy, border ? edge : (hatched && (dx + dy) % 3 == 0 ? hatch : fill));
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

void draw(pack::pack_plan const& plan, pack::keep_sets const& keep, fs::path const& path) {
  constexpr index_t slot_px = 8, per_line = 64, gap = 10, grid_px = 4, margin = 10;
  rgb const padding{170, 170, 170};
  index_t const lines_per_row = (plan.row_len() + per_line - 1) / per_line;
  index_t const width = 2 * margin + per_line * slot_px;
  index_t const packed_h = plan.n_rows() * (lines_per_row * slot_px + gap);

  // Layout of the per-image grids below the packed rows: a simple left-to-right flow.
  struct place {
    index_t x, y;
  };
  std::vector<place> where(static_cast<std::size_t>(plan.n_images()));
  index_t x = margin, y = margin + packed_h + gap, line_h = 0;
  for (index_t i = 0; i < plan.n_images(); ++i) {
    pack::patch_grid const g = plan.grid(i);
    index_t const gw = g.w * grid_px, gh = g.h * grid_px;
    if (x > margin && x + gw > width - margin) {
      x = margin;
      y += line_h + gap;
      line_h = 0;
    }
    where[static_cast<std::size_t>(i)] = {x, y};
    x += gw + gap;
    line_h = std::max(line_h, gh);
  }
  canvas c(width, y + line_h + margin);

  // Packed rows: slot s of row r at line (s / per_line), column (s % per_line).
  for (index_t s = 0; s < plan.n_slots(); ++s) {
    index_t const r = s / plan.row_len(), k = s % plan.row_len();
    index_t const px = margin + (k % per_line) * slot_px;
    index_t const py = margin + r * (lines_per_row * slot_px + gap) + (k / per_line) * slot_px;
    std::int32_t const img = plan.image_id()[static_cast<std::size_t>(s)];
    c.cell(px, py, slot_px, img < 0 ? padding : colour_of(img));
    if (img >= 0 && s == plan.slot_begin(img))  // a black bar where each image starts
      for (index_t dy = 0; dy < slot_px; ++dy) {
        c.set(px, py + dy, {0, 0, 0});
        c.set(px + 1, py + dy, {0, 0, 0});
      }
  }
  // Per-image grids: kept patches in colour, dropped ones pale and hatched.
  for (index_t i = 0; i < plan.n_images(); ++i) {
    pack::patch_grid const g = plan.grid(i);
    std::vector<bool> kept(static_cast<std::size_t>(g.n_patches()), keep.per_image.empty());
    if (!keep.per_image.empty())
      for (std::int32_t k : keep.per_image[static_cast<std::size_t>(i)]) kept[static_cast<std::size_t>(k)] = true;
    rgb const col = colour_of(i), pale = mix(col, {255, 255, 255}, 0.7);
    for (index_t k = 0; k < g.n_patches(); ++k) {
      bool const on = kept[static_cast<std::size_t>(k)];
      c.cell(where[static_cast<std::size_t>(i)].x + (k % g.w) * grid_px, where[static_cast<std::size_t>(i)].y + (k / g.w) * grid_px,
             grid_px, on ? col : pale, !on);
    }
  }
  if (!c.write_png(path)) throw std::runtime_error("navit_packing: cannot write " + path.string());
}

int run(options o) {
  // Inputs: names and sizes.
  std::vector<std::string> names;
  std::vector<tessera::image_size> sizes;
  bool from_files = false;
  if (!o.sizes.empty() && !o.files.empty()) usage("give FILE... or --sizes, not both");
  if (o.sizes.empty() && o.files.empty() && !o.synthetic) {
    fs::path const shared = fs::path("..") / "shared" / "data" / "images";
    std::error_code ec;
    if (fs::is_directory(shared, ec)) {
      for (auto const& e : fs::directory_iterator(shared))
        if (e.is_regular_file()) o.files.push_back(e.path());
      std::sort(o.files.begin(), o.files.end());
    }
  }
  if (!o.files.empty()) {
    from_files = true;
    for (auto const& f : o.files) {
      io::rgb_image const img = io::load_image(f);  // only its size is used
      names.push_back(f.filename().string());
      sizes.push_back({img.height(), img.width()});
    }
  } else {
    sizes = o.sizes.empty() ? synthetic_sizes() : o.sizes;
    for (auto const& s : sizes) names.push_back(std::to_string(s.height) + "x" + std::to_string(s.width));
  }
  index_t const repeat = o.repeat > 0 ? o.repeat : (from_files ? 3 : 1);

  // 1. Resolutions: image j (of the repeated list) draws from stream j of the seed.
  pack::side_truncated_normal const side{o.min_side, o.max_side, -0.5, 1.0};
  std::vector<pack::patch_grid> grids;
  std::vector<std::string> labels;
  std::vector<tessera::image_size> targets;
  for (index_t rep = 0; rep < repeat; ++rep)
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      tessera::rng r(o.seed, static_cast<std::uint64_t>(grids.size()));
      tessera::image_size const t = pack::sample_resolution(sizes[i].height, sizes[i].width, side, o.patch, r);
      grids.push_back({1, t.height / o.patch, t.width / o.patch});
      targets.push_back(t);
      labels.push_back(names[i]);
    }
  // 2. Token dropping (seed + 1: independent of the resolution draws).
  pack::keep_sets const keep = pack::make_keep_sets(grids, pack::drop_beta{o.drop_mean, o.drop_max, 0.3}, o.seed + 1);
  // 3. Packing.
  pack::pack_plan const plan =
      pack::pack_plan::make(grids, {pack::pack_mode::fixed_rows, o.row_len, o.cap}, &keep);

  std::printf("navit_packing: %zu images (%s), patch %lld, side ~ truncated N(-0.5, 1) on [%g, %g], "
              "drop rate ~ %g * Beta(mean %g), seed %llu\n",
              grids.size(), from_files ? "files" : "sizes", static_cast<long long>(o.patch), o.min_side, o.max_side,
              o.drop_max, o.drop_mean / o.drop_max, static_cast<unsigned long long>(o.seed));
  std::printf("%4s  %-28s %11s  %11s  %7s  %5s  %5s  %3s\n", "img", "source", "size", "resized", "grid", "tokens",
              "kept", "row");
  for (index_t i = 0; i < plan.n_images(); ++i) {
    auto const iu = static_cast<std::size_t>(i);
    pack::patch_grid const g = plan.grid(i);
    std::string const sz = std::to_string(sizes[iu % sizes.size()].height) + "x" + std::to_string(sizes[iu % sizes.size()].width);
    std::string const rs = std::to_string(targets[iu].height) + "x" + std::to_string(targets[iu].width);
    std::string const gr = std::to_string(g.h) + "x" + std::to_string(g.w);
    std::printf("%4lld  %-28.28s %11s  %11s  %7s  %5lld  %5lld  %3lld\n", static_cast<long long>(i), labels[iu].c_str(),
                sz.c_str(), rs.c_str(), gr.c_str(), static_cast<long long>(g.n_patches()),
                static_cast<long long>(plan.n_kept(i)), static_cast<long long>(plan.row_of_image(i)));
  }
  std::printf("packed: %lld rows x %lld slots, images per row:", static_cast<long long>(plan.n_rows()),
              static_cast<long long>(plan.row_len()));
  for (index_t r = 0; r < plan.n_rows(); ++r) std::printf(" %zu", plan.images_of_row(r).size());
  std::printf("\nreal tokens %lld of %lld slots: efficiency %.2f %% (padding %.2f %%), %lld sequences\n",
              static_cast<long long>(plan.n_real_tokens()), static_cast<long long>(plan.n_slots()),
              100.0 * plan.efficiency(), 100.0 * (1.0 - plan.efficiency()),
              static_cast<long long>(plan.seqs().n_seqs()));
  draw(plan, keep, o.out);
  std::printf("picture: %s\n", o.out.string().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (std::exception const& e) {
    std::fprintf(stderr, "navit_packing: %s\n", e.what());
    return 1;
  }
}
