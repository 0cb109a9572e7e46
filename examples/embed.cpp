// SPDX-License-Identifier: Apache-2.0
// embed: one vector per image for a folder (or list) of images of mixed sizes, NaViT-style, with
// the vision tower of a POINTS1.5 checkpoint (model/qwen2_vl/encoder.hpp; nothing of the LLM is
// read). Each image keeps its aspect ratio (the checkpoint's smart_resize); batches of images are
// packed first-fit into rows of --row-len patch tokens (pack::pack_plan, fixed_rows; padding at
// each row's end), optionally after dropping a share of each image's tokens (--drop), and a whole
// batch is one pass of the tower: attention is block-diagonal, an image attends only to itself,
// so its vector does not depend on which images share its row (--check proves it on the run).
// Each image's vector is the mean of its tokens: the tower's output (--from tower, the default;
// the kept tokens only when dropping) or the projector's rows (--from projector: POINTS1.5's
// PatchMerger, LLM-space vectors; it merges whole 2 x 2 windows, so it refuses --drop).
// Writes PREFIX.npy (float32 [n_images, dim], NPY 1.0) and PREFIX.index.tsv (one line per image,
// in .npy row order); both appear only when the run succeeds. Progress goes to stderr (a bar on a
// terminal, else one line per batch); packing efficiency, images/s and tokens/s at the end.
//
// Usage: embed [IMAGE | FOLDER]... [--model DIR] [--out PREFIX] [--row-len N] [--batch N]
//              [--drop RATE] [--seed S] [--pool mean|map] [--from tower|projector] [--threads N]
//              [--max-image-pixels N] [--check]
//        embed --write-samples FOLDER
// A folder stands for its image files (.png .jpg .jpeg .gif .bmp .tga, any case; not recursive),
// sorted by name; its other entries are skipped with one warning. An image that cannot be read is
// an error naming it. --row-len defaults to the most tokens any image can have under the
// checkpoint's max_pixels, so every image fits; a shorter row that an image does not fit is
// refused, naming the image and the --row-len it needs. --drop RATE keeps max(1, floor(n (1 -
// RATE))) tokens of each image, drawn from rng(seed, image index) (pack::make_keep_sets over all
// inputs), so a vector does not depend on the batching either. --check encodes every image again
// alone (one varlen sequence, same kept tokens) and fails (exit 1) if any element differs by more
// than 1e-4 + 1e-4 |alone|. --write-samples writes a folder of generated images of mixed sizes
// (coloured shapes on a gradient) to try it on.
// Any bad input (missing file or folder, no images, an unreadable image, a directory that is not
// a POINTS1.5 checkpoint, an output that cannot be written) is one line on stderr and exit 1.
#include "common/sampling_flags.hpp"

#include <tessera/core/random.hpp>
#include <tessera/io/image.hpp>
#include <tessera/io/safetensors.hpp>
#include <tessera/io/weight_binder.hpp>
#include <tessera/model/points15/config.hpp>
#include <tessera/model/projector/patch_merger.hpp>
#include <tessera/model/qwen2_vl/checkpoint.hpp>
#include <tessera/model/qwen2_vl/encoder.hpp>
#include <tessera/model/qwen2_vl/preprocessor_config.hpp>
#include <tessera/model/qwen2_vl/processor.hpp>
#include <tessera/pack/pack_plan.hpp>
#include <tessera/pack/token_drop.hpp>
#include <tessera/pool/masked_mean.hpp>
#include <tessera/vision/pool_policies.hpp>

#include <stb_image_write.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace io = tessera::io;
namespace model = tessera::model;
namespace pack = tessera::pack;
namespace pool = tessera::pool;
namespace vision = tessera::vision;
namespace backend = tessera::backend;
using tessera::index_t;
using tessera::patch_grid;
using tessera::tensor_view;
using host_floats = tessera::host_buffer<float>;

struct options {
  std::vector<fs::path> inputs;
  fs::path model_dir = "models/shapes-tiny";
  std::string out = "embeddings";
  index_t row_len = 0;  // 0 = the largest image the checkpoint's max_pixels allows
  index_t batch = 32;
  double drop = 0.0;
  std::uint64_t seed = 0;
  std::string pool = "mean", from = "tower";
  index_t threads = 0, max_image_pixels = 0;
  bool check = false;
  fs::path write_samples;
};

options parse_args(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view const a = argv[i];
    auto value = [&]() -> char const* {
      if (i + 1 >= argc) examples::usage("missing value after " + std::string(a));
      return argv[++i];
    };
    if (a == "--model") o.model_dir = value();
    else if (a == "--out") o.out = value();
    else if (a == "--row-len") o.row_len = examples::parse_number<index_t>(a, value());
    else if (a == "--batch") o.batch = examples::parse_number<index_t>(a, value());
    else if (a == "--drop") o.drop = examples::parse_number<double>(a, value());
    else if (a == "--seed") o.seed = examples::parse_number<std::uint64_t>(a, value());
    else if (a == "--pool") o.pool = value();
    else if (a == "--from") o.from = value();
    else if (a == "--threads") o.threads = examples::parse_number<index_t>(a, value());
    else if (a == "--max-image-pixels") o.max_image_pixels = examples::parse_number<index_t>(a, value());
    else if (a == "--check") o.check = true;
    else if (a == "--write-samples") o.write_samples = value();
    else if (a == "--help" || a == "-h") examples::usage("one vector per image with a POINTS1.5 vision tower");
    else if (a.starts_with("--")) examples::usage("unknown argument '" + std::string(a) + "'");
    else o.inputs.emplace_back(a);
  }
  if (o.inputs.empty() && o.write_samples.empty()) examples::usage("give the image files or folders to embed");
  if (o.batch < 1) examples::usage("--batch needs at least 1 image");
  if (!(o.drop < 1.0)) examples::usage("--drop takes a rate in [0, 1)");
  if (o.pool != "mean" && o.pool != "map") examples::usage("--pool takes mean or map");
  if (o.from != "tower" && o.from != "projector") examples::usage("--from takes tower or projector");
  if (o.out.empty()) examples::usage("--out needs a path prefix");
  return o;
}

// ---- inputs --------------------------------------------------------------------------------------

bool has_image_extension(fs::path const& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (char const* e : {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tga"})
    if (ext == e) return true;
  return false;
}

/// The image files of the arguments in order, each folder expanded to its image files sorted by
/// name. A named file is taken whatever its extension (decoding decides); a folder's other entries
/// are skipped with one warning line.
std::vector<fs::path> list_inputs(std::vector<fs::path> const& args) {
  std::vector<fs::path> out;
  for (fs::path const& a : args) {
    std::error_code ec;
    if (fs::is_directory(a, ec)) {
      std::vector<fs::path> images, skipped;
      for (fs::directory_entry const& e : fs::directory_iterator(a))
        (e.is_regular_file(ec) && has_image_extension(e.path()) ? images : skipped).push_back(e.path());
      std::sort(images.begin(), images.end());
      std::sort(skipped.begin(), skipped.end());
      if (!skipped.empty()) {
        std::string names;
        for (std::size_t i = 0; i < skipped.size() && i < 3; ++i) names += (i ? ", " : "") + skipped[i].filename().string();
        bool const one = skipped.size() == 1;
        std::fprintf(stderr, "embed: warning: skipping %zu entr%s of '%s' that %s (%s%s); image files end in .png "
                     ".jpg .jpeg .gif .bmp .tga, and folders are not searched recursively\n", skipped.size(),
                     one ? "y" : "ies", a.string().c_str(), one ? "is not an image file" : "are not image files",
                     names.c_str(), skipped.size() > 3 ? ", ..." : "");
      }
      out.insert(out.end(), images.begin(), images.end());
    } else if (fs::exists(a, ec)) {
      out.push_back(a);
    } else {
      TESSERA_FAIL("'", a.string(), "': no such file or folder");
    }
  }
  TESSERA_CHECK(!out.empty(), "no images to embed: give image files or folders holding .png, .jpg, .jpeg, .gif, .bmp "
                              "or .tga files");
  return out;
}

// ---- the model -----------------------------------------------------------------------------------

/// One image, read and preprocessed.
struct prepared_image {
  fs::path path;
  tessera::image_size size;        // as decoded
  model::qwen2vl_pixels pixels;    // smart_resize, bicubic, normalize, patchify (2 x 2 windows)
  std::vector<std::int32_t> keep;  // kept patches (indices into pixels' rows); empty = all
  [[nodiscard]] index_t n_kept() const { return keep.empty() ? pixels.n_patches() : static_cast<index_t>(keep.size()); }
};

/// The vision side of a POINTS1.5 checkpoint: its image processor, the Qwen2-VL tower and the
/// PatchMerger projector, f32 on the cpu backend. Only these tensors are bound (converted to f32
/// when stored otherwise); the LLM's are never read.
class points15_vision {
 public:
  points15_vision(fs::path const& dir, int threads, io::image_limits limits)
      : config_(model::read_points15_config(dir)), pre_(model::read_qwen2vl_preprocessor_config(dir)),
        ckpt_(std::make_unique<io::checkpoint const>(dir)), limits_(limits), ctx_(threads) {
    model::qwen2_vl_vision_config const& v = config_.vision;
    model::check_points15_patch_geometry(v, pre_);  // preprocess_qwen2vl's patches
    io::weight_binder binder(*ckpt_, io::dtype_policy::convert);
    encoder_.emplace(model::make_qwen2vl_encoder<backend::cpu, float>(v, model::bind_vision_encoder<float>(binder, v)));
    merger_ = model::bind_patch_merger<float>(binder, config_.projector);
    model::check_patch_merger(config_.projector, merger_);
  }

  [[nodiscard]] model::points15_config const& config() const noexcept { return config_; }
  [[nodiscard]] int threads() const noexcept { return ctx_.threads(); }
  /// Width of the vectors: the tower's embed_dim, or the projector's output (the LLM's hidden size).
  [[nodiscard]] index_t dim(bool from_projector) const noexcept {
    return from_projector ? config_.projector.out_dim : config_.vision.embed_dim;
  }
  /// Most patch tokens smart_resize lets an image have: max_pixels in whole 28 x 28 windows.
  [[nodiscard]] index_t max_tokens() const noexcept { return pre_.limits.max_pixels / (28 * 28) * 4; }

  /// Reads and preprocesses one image; errors name the file.
  [[nodiscard]] prepared_image prepare(fs::path const& path) {
    io::rgb_image const rgb = io::load_image(path, limits_);  // its errors name the file
    try {
      return {path, {rgb.height(), rgb.width()},
              model::preprocess_qwen2vl(rgb, pre_.limits, pre_.normalization, ctx_.threads()), {}};
    } catch (tessera::error const& e) {  // smart_resize: an aspect ratio over 200, ...
      TESSERA_FAIL("'", path.string(), "': ", e.message());
    }
  }

  /// pooled[i] = the mean of image i's tokens, images packed as `plan` says (fixed rows or one
  /// varlen sequence; its keep sets must be the images' `keep`): the tower's kept tokens, or, with
  /// `from_projector`, the projector's rows (every token kept). pooled: [n_images, dim].
  void embed(std::span<prepared_image const> images, pack::pack_plan const& plan, bool from_projector,
             tensor_view<float, 2> pooled) {
    index_t const n = plan.n_slots(), f = config_.vision.patch_dim, d = config_.vision.embed_dim;
    std::vector<tensor_view<float const, 2>> rows;
    for (prepared_image const& im : images) rows.push_back(im.pixels.rows());
    host_floats patches(n * f), tokens(n * d);
    pack::gather_patches(plan, rows, patches.view(n, f), ctx_.threads());  // [n_slots, patch_dim]
    vision::packed_tokens const batch = vision::batch_of(plan);
    encoder_->forward(patches.view(n, f), batch, tokens.view(n, d), ctx_);  // [n_slots, embed_dim]
    if (!from_projector) {
      vision::policy::mean_pooling{}(tokens.view(n, d), batch, pooled, ctx_);
      return;
    }
    // The merger reads each image's tokens back to back in image order: copy them out of the rows.
    std::vector<patch_grid> grids;
    std::vector<index_t> merged_rows;
    index_t total = 0;
    for (index_t i = 0; i < plan.n_images(); ++i) {
      grids.push_back(plan.grid(i));
      merged_rows.push_back(plan.n_kept(i) / 4);
      total += plan.n_kept(i);
    }
    host_floats x(total * d), merged(total / 4 * config_.projector.out_dim);
    for (index_t i = 0, at = 0; i < plan.n_images(); at += plan.n_kept(i), ++i)
      std::copy_n(tokens.data() + plan.slot_begin(i) * d, plan.n_kept(i) * d, x.data() + at * d);
    auto const out = merged.view(total / 4, config_.projector.out_dim);  // [n_rows, out_dim]
    model::patch_merger<backend::cpu>(x.view(total, d), grids, pack::token_order::merge_window_major,
                                      config_.projector, merger_, out, ctx_);
    pool::masked_mean<backend::cpu>(out, tessera::seq_offsets::from_lengths(merged_rows), pooled, ctx_);
  }

 private:
  model::points15_config config_;
  model::qwen2vl_preprocessor_config pre_;
  std::unique_ptr<io::checkpoint const> ckpt_;  // the encoder's f32 tensors view its mapping
  io::image_limits limits_;
  tessera::exec_ctx<backend::cpu> ctx_;
  std::optional<model::qwen2vl_encoder<backend::cpu, float>> encoder_;
  model::patch_merger_weights<float> merger_;
};

/// The plan of a batch (fixed rows of `row_len`, first-fit) or, with row_len 0, of one varlen
/// sequence; tokens in the 2 x 2-window order of the processor's patch rows.
pack::pack_plan plan_of(std::span<prepared_image const> images, index_t row_len) {
  std::vector<patch_grid> grids;
  pack::keep_sets keep;
  bool const dropped = std::any_of(images.begin(), images.end(), [](auto const& im) { return !im.keep.empty(); });
  for (prepared_image const& im : images) {
    grids.push_back(im.pixels.grid);
    if (dropped) keep.per_image.push_back(im.keep);
  }
  pack::pack_options opt;
  if (row_len > 0) opt = {.mode = pack::pack_mode::fixed_rows, .row_len = row_len, .max_images_per_row = 0};
  return pack::pack_plan::make(grids, opt, &keep, pack::token_order::merge_window_major, 2);
}

// ---- output --------------------------------------------------------------------------------------

/// PREFIX.npy and PREFIX.index.tsv, written as PREFIX.*.part while the run goes and renamed when it
/// succeeds; removed when it does not.
class output_files {
 public:
  output_files(std::string const& prefix, index_t n_images, index_t dim)
      : npy_path_(prefix + ".npy"), tsv_path_(prefix + ".index.tsv"), dim_(dim) {
    open(npy_, npy_path_);
    try {
      open(tsv_, tsv_path_);
    } catch (...) {
      discard();
      throw;
    }
    // NPY 1.0: magic, version, header length (uint16 LE), a Python dict literal padded with spaces
    // and ended by '\n' so that the data starts at a multiple of 64 bytes.
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(n_images) + ", " +
                         std::to_string(dim) + "), }";
    header.append(63 - (10 + header.size()) % 64, ' ').push_back('\n');
    auto const len = static_cast<std::uint16_t>(header.size());
    npy_.write("\x93NUMPY\x01\x00", 8);
    npy_.put(static_cast<char>(len & 0xff)).put(static_cast<char>(len >> 8)) << header;
    tsv_ << "index\tpath\theight\twidth\tresized_height\tresized_width\tpatches\tkept\tbatch\trow\toffset\n";
  }
  output_files(output_files const&) = delete;
  output_files& operator=(output_files const&) = delete;
  ~output_files() {
    if (!committed_) discard();  // a failed run leaves nothing behind
  }

  /// Appends vectors [n, dim], contiguous (little-endian float32).
  void write_vectors(tensor_view<float const, 2> v) {
    static_assert(std::endian::native == std::endian::little, "embed writes the .npy's '<f4' data as the host's floats");
    npy_.write(reinterpret_cast<char const*>(v.data()), static_cast<std::streamsize>(v.extent(0) * dim_ * 4));
  }
  std::ofstream& index() noexcept { return tsv_; }

  void commit() {
    npy_.close();
    tsv_.close();
    TESSERA_CHECK(npy_ && tsv_, "could not write '", part(npy_path_), "' or '", part(tsv_path_), "' (disk full?)");
    fs::rename(part(npy_path_), npy_path_);
    fs::rename(part(tsv_path_), tsv_path_);
    committed_ = true;
  }
  [[nodiscard]] std::string const& npy_path() const noexcept { return npy_path_; }
  [[nodiscard]] std::string const& tsv_path() const noexcept { return tsv_path_; }

 private:
  static std::string part(std::string const& p) { return p + ".part"; }
  void discard() {
    npy_.close();
    tsv_.close();
    std::error_code ec;
    fs::remove(part(npy_path_), ec);
    fs::remove(part(tsv_path_), ec);
  }
  static void open(std::ofstream& f, std::string const& p) {
    f.open(part(p), std::ios::binary | std::ios::trunc);
    TESSERA_CHECK(f.is_open(), "cannot write '", part(p), "' (--out names a path prefix in a writable folder)");
  }
  std::string npy_path_, tsv_path_;
  index_t dim_;
  std::ofstream npy_, tsv_;
  bool committed_ = false;
};

/// A path as one TSV field: backslash, tab, newline and carriage return escaped.
std::string tsv_field(std::string const& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\t') out += "\\t";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else out += c;
  }
  return out;
}

// ---- progress ------------------------------------------------------------------------------------

/// A bar on stderr when it is a terminal, else one line per batch.
class progress {
 public:
  explicit progress(index_t n_images) : n_images_(n_images), tty_(isatty(fileno(stderr)) != 0) {}
  /// After batch b (from 1), made of `plan`: `done` images and `rows` rows so far, at `efficiency`, in `seconds`.
  void batch(index_t b, pack::pack_plan const& plan, index_t done, index_t rows, double efficiency, double seconds) const {
    double const rate = seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
    if (!tty_) {
      std::fprintf(stderr, "batch %ld: %ld images in %ld row%s of %ld, efficiency %.1f%%; %ld / %ld images, %.1f images/s\n",
                   static_cast<long>(b), static_cast<long>(plan.n_images()), static_cast<long>(plan.n_rows()),
                   plan.n_rows() == 1 ? "" : "s", static_cast<long>(plan.row_len()), 100.0 * plan.efficiency(),
                   static_cast<long>(done), static_cast<long>(n_images_), rate);
      return;
    }
    constexpr int width = 30;
    int const filled = static_cast<int>(width * done / n_images_);
    double const eta = rate > 0 ? static_cast<double>(n_images_ - done) / rate : 0.0;
    std::fprintf(stderr, "\r[%s%s] %ld/%ld images, %ld rows, efficiency %.1f%%, %.1f images/s, %.0f s left  ",
                 std::string(static_cast<std::size_t>(filled), '#').c_str(),
                 std::string(static_cast<std::size_t>(width - filled), '.').c_str(), static_cast<long>(done),
                 static_cast<long>(n_images_), static_cast<long>(rows), 100.0 * efficiency, rate, eta);
    if (done == n_images_) std::fprintf(stderr, "\n");
  }

 private:
  index_t n_images_;
  bool tty_;
};

// ---- generated samples ---------------------------------------------------------------------------

/// Writes 12 PNG images of mixed sizes and aspect ratios: a vertical gradient, a rectangle and a
/// disc, colours and places varying with the image.
void write_samples(fs::path const& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  TESSERA_CHECK(fs::is_directory(dir, ec), "cannot create the folder '", dir.string(), "'");
  constexpr std::array<std::array<int, 2>, 12> sizes{{{64, 64}, {96, 200}, {180, 120}, {240, 160}, {50, 300}, {300, 40},
                                                      {128, 128}, {160, 256}, {210, 210}, {30, 30}, {100, 60}, {90, 220}}};
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    int const h = sizes[k][0], w = sizes[k][1];
    auto const c = [&](std::size_t salt, int ch) { return static_cast<int>((k * 97 + salt * 61 + ch * 89) % 256); };
    std::vector<std::uint8_t> px(static_cast<std::size_t>(h * w * 3));
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int ch = 0; ch < 3; ++ch) {
          int v = c(0, ch) * (h - y) / h + c(1, ch) * y / h;                    // gradient
          if (x > w / 8 && x < w / 2 && y > h / 6 && y < h / 2) v = c(2, ch);  // rectangle
          int const dx = x - 2 * w / 3, dy = y - 2 * h / 3, r = std::min(h, w) / 5 + 1;
          if (dx * dx + dy * dy < r * r) v = c(3, ch);                         // disc
          px[static_cast<std::size_t>((y * w + x) * 3 + ch)] = static_cast<std::uint8_t>(v);
        }
    char name[64];
    std::snprintf(name, sizeof name, "sample_%02zu_%dx%d.png", k, h, w);
    fs::path const path = dir / name;
    TESSERA_CHECK(stbi_write_png(path.string().c_str(), w, h, 3, px.data(), w * 3) != 0, "cannot write '",
                  path.string(), "'");
  }
  std::printf("wrote %zu images of mixed sizes to %s\n", sizes.size(), dir.string().c_str());
}

// ---- the run -------------------------------------------------------------------------------------

/// How far packed vectors are from the same images encoded alone: the largest |got - want|, and the
/// largest share of the budget 1e-4 + 1e-4 |want| (f32, the same math in another packing) used.
struct difference {
  double max_abs = 0.0, max_budget = 0.0;
  void add(tensor_view<float const, 2> got, tensor_view<float const, 2> want) {
    for (index_t i = 0; i < got.extent(0); ++i)
      for (index_t j = 0; j < got.extent(1); ++j) {
        double const g = got(i, j), w = want(i, j), e = std::abs(g - w);
        max_abs = std::max(max_abs, std::isnan(e) ? INFINITY : e);
        max_budget = std::max(max_budget, std::isnan(e) ? INFINITY : e / (1e-4 + 1e-4 * std::abs(w)));
      }
  }
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Reads and preprocesses the images `paths[first ..]` of a batch and draws their kept tokens
/// (--drop); refuses an image with more tokens than a row.
std::vector<prepared_image> prepare_batch(points15_vision& m, std::span<fs::path const> paths, index_t first,
                                          options const& o, index_t row_len) {
  std::vector<prepared_image> batch;
  for (std::size_t k = 0; k < paths.size(); ++k) {
    prepared_image im = m.prepare(paths[k]);
    index_t const n = im.pixels.n_patches();
    if (o.drop > 0) {
      tessera::rng r(o.seed, static_cast<std::uint64_t>(first) + k);  // as pack::make_keep_sets over all inputs
      im.keep = tessera::sample_without_replacement(r, n, pack::n_keep(n, o.drop));
    }
    TESSERA_CHECK(im.n_kept() <= row_len, "'", im.path.string(), "' (", im.size.height, " x ", im.size.width,
                  ", resized to ", im.pixels.resized.height, " x ", im.pixels.resized.width, ") has ", im.n_kept(),
                  " tokens, more than --row-len ", row_len, "; use --row-len ", im.n_kept(),
                  " or more (this checkpoint's max_pixels allows up to ", m.max_tokens(), " tokens per image)");
    batch.push_back(std::move(im));
  }
  return batch;
}

/// What the batches did so far.
struct totals {
  index_t images = 0, batches = 0, rows = 0, slots = 0, kept = 0;
  double read_s = 0.0, encode_s = 0.0;  // reading + preprocessing, packing + tower + pooling; not --check
  [[nodiscard]] double efficiency() const noexcept {
    return slots == 0 ? 1.0 : static_cast<double>(kept) / static_cast<double>(slots);
  }
};

/// One index line per image of a batch packed by `plan`; `t` is before the batch.
void write_index(std::ostream& os, std::span<prepared_image const> batch, pack::pack_plan const& plan, totals const& t) {
  for (index_t i = 0; i < plan.n_images(); ++i) {
    prepared_image const& im = batch[static_cast<std::size_t>(i)];
    index_t const row = plan.row_of_image(i);
    os << t.images + i << '\t' << tsv_field(im.path.string()) << '\t' << im.size.height << '\t' << im.size.width << '\t'
       << im.pixels.resized.height << '\t' << im.pixels.resized.width << '\t' << im.pixels.n_patches() << '\t'
       << im.n_kept() << '\t' << t.batches << '\t' << t.rows + row << '\t' << plan.slot_begin(i) - row * plan.row_len()
       << '\n';
  }
}

int run(options const& o) {
  if (!o.write_samples.empty()) {
    write_samples(o.write_samples);
    return 0;
  }
  bool const from_projector = o.from == "projector";
  TESSERA_CHECK(o.pool == "mean", "--pool map: POINTS1.5 has no attention-pooling (MAP) head, no trained probe to pool "
                                  "with (its tower hands every token to the patch merger); use --pool mean");
  TESSERA_CHECK(!(from_projector && o.drop > 0), "--from projector merges whole 2 x 2 windows of tokens, which "
                                                 "--drop breaks; pool the tower's tokens (--from tower) when dropping");
  std::vector<fs::path> const paths = list_inputs(o.inputs);
  std::error_code ec;
  TESSERA_CHECK(fs::is_directory(o.model_dir, ec), "--model '", o.model_dir.string(), "' is not a directory",
                o.model_dir == options{}.model_dir ? " (the default)" : "", "; a POINTS1.5 checkpoint directory holds "
                "config.json, preprocessor_config.json and the safetensors");
  io::image_limits limits;
  if (o.max_image_pixels > 0) limits.max_pixels = o.max_image_pixels;
  points15_vision m(o.model_dir, static_cast<int>(o.threads), limits);
  index_t const dim = m.dim(from_projector), row_len = o.row_len > 0 ? o.row_len : m.max_tokens();
  auto const n_images = static_cast<index_t>(paths.size());
  std::fprintf(stderr, "model %s: POINTS1.5 vision tower, %ld blocks x %ld, projector to %ld; %d thread%s\n",
               o.model_dir.string().c_str(), static_cast<long>(m.config().vision.depth),
               static_cast<long>(m.config().vision.embed_dim), static_cast<long>(m.config().projector.out_dim),
               m.threads(), m.threads() == 1 ? "" : "s");
  char dropping[64] = "";
  if (o.drop > 0) std::snprintf(dropping, sizeof dropping, ", %g of each image's tokens dropped", o.drop);
  std::fprintf(stderr, "%ld images, batches of %ld packed first-fit into rows of %ld tokens%s; vectors: mean of the %s\n",
               static_cast<long>(n_images), static_cast<long>(o.batch), static_cast<long>(row_len), dropping,
               from_projector ? "projector's rows" : "tower's tokens");

  output_files out(o.out, n_images, dim);
  progress const bar(n_images);
  totals t;
  difference diff;
  while (t.images < n_images) {
    auto const t0 = std::chrono::steady_clock::now();
    index_t const n = std::min(o.batch, n_images - t.images);
    std::vector<prepared_image> const batch =
        prepare_batch(m, std::span(paths).subspan(static_cast<std::size_t>(t.images), static_cast<std::size_t>(n)),
                      t.images, o, row_len);
    auto const t1 = std::chrono::steady_clock::now();
    pack::pack_plan const plan = plan_of(batch, row_len);
    host_floats pooled(n * dim);
    m.embed(batch, plan, from_projector, pooled.view(n, dim));
    t.read_s += std::chrono::duration<double>(t1 - t0).count();
    t.encode_s += seconds_since(t1);
    out.write_vectors(pooled.view(n, dim));
    write_index(out.index(), batch, plan, t);
    if (o.check) {
      host_floats alone(dim);
      for (index_t i = 0; i < n; ++i) {
        std::span<prepared_image const> const one(&batch[static_cast<std::size_t>(i)], 1);
        m.embed(one, plan_of(one, 0), from_projector, alone.view(1, dim));
        diff.add(pooled.view(n, dim).slice_rows(i, i + 1), alone.view(1, dim));
      }
    }
    t.images += n, t.batches += 1, t.rows += plan.n_rows(), t.slots += plan.n_slots(), t.kept += plan.n_real_tokens();
    bar.batch(t.batches, plan, t.images, t.rows, t.efficiency(), t.read_s + t.encode_s);
  }
  out.commit();

  std::printf("embedded %ld images -> %s [%ld, %ld] float32, index %s\n", static_cast<long>(n_images),
              out.npy_path().c_str(), static_cast<long>(n_images), static_cast<long>(dim), out.tsv_path().c_str());
  std::printf("packing: %ld batches, %ld rows of %ld slots, %ld kept tokens in %ld slots: efficiency %.1f%%\n",
              static_cast<long>(t.batches), static_cast<long>(t.rows), static_cast<long>(row_len),
              static_cast<long>(t.kept), static_cast<long>(t.slots), 100.0 * t.efficiency());
  double const total_s = t.read_s + t.encode_s;
  std::printf("speed: %.3f s = %.1f images/s; reading and preprocessing %.3f s, encoding %.3f s = %.0f tokens/s "
              "(%.0f slots/s)\n", total_s, static_cast<double>(n_images) / total_s, t.read_s, t.encode_s,
              static_cast<double>(t.kept) / t.encode_s, static_cast<double>(t.slots) / t.encode_s);
  if (!o.check) return 0;
  bool const ok = diff.max_budget <= 1.0;
  std::printf("check: %ld images encoded alone, max |packed - alone| = %.3g (%.2f%% of the budget 1e-4 + 1e-4 |alone|): %s\n",
              static_cast<long>(n_images), diff.max_abs, 100.0 * diff.max_budget, ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

}  // namespace

void examples::usage(std::string const& why) {
  std::fprintf(stderr,
               "embed: %s\n"
               "usage: embed [IMAGE | FOLDER]... [--model DIR] [--out PREFIX] [--row-len N] [--batch N]\n"
               "             [--drop RATE] [--seed S] [--pool mean|map] [--from tower|projector] [--threads N]\n"
               "             [--max-image-pixels N] [--check]\n"
               "       embed --write-samples FOLDER\n",
               why.c_str());
  std::exit(2);
}

int main(int argc, char** argv) {
  options const o = parse_args(argc, argv);
  try {
    return run(o);
  } catch (tessera::error const& e) {
    std::fprintf(stderr, "embed: %s\n", e.message().c_str());
  } catch (std::exception const& e) {
    std::fprintf(stderr, "embed: %s\n", e.what());
  }
  return 1;
}
