/// Frames of the environments: Gymnasium's `render_mode="rgb_array"` (and FrozenLake's `"ansi"`).
///
/// Each built-in env is drawn with SkiaSharp as Gymnasium 1.4.0's pygame renderer draws it
/// (`gymnasium/envs/classic_control/*.py`, `gymnasium/envs/toy_text/frozen_lake.py`): the same
/// screen sizes, colours, geometry and coordinate conventions (classic control draws with y up and
/// flips the surface at the end). Anti-aliasing differs between pygame's gfxdraw and Skia, and two
/// pictures are our own drawings, not Gymnasium's image files: Pendulum's torque arrow
/// (`assets/clockwise.png`) and FrozenLake's tiles and elf (`img/*.png`); `tests/RenderTests.fs`
/// measures the pixel agreement with Gymnasium's own frames (`tests/data/frames`). Drawing reads
/// the state only: it never changes a trajectory, and nothing is drawn unless `Render` is called.
namespace Rl

open System
open SkiaSharp

/// SkiaSharp plumbing shared by `Frame` and `Render`.
module internal Skia =
    /// Where libSkiaSharp.so is found when the host did not resolve it from the app's deps.json
    /// (F# Interactive: scripts and notebooks): next to Rl.dll or SkiaSharp.dll, their
    /// `runtimes/linux-x64/native`, and the NuGet package folder.
    let private nativeResolver =
        lazy
            (try
                let dirs =
                    [
                        for asm in [ typeof<Action>.Assembly; typeof<SKBitmap>.Assembly ] do
                            let d = IO.Path.GetDirectoryName asm.Location

                            if not (String.IsNullOrEmpty d) then
                                yield d
                                yield IO.Path.Combine(d, "runtimes", "linux-x64", "native")
                        let packages =
                            match Environment.GetEnvironmentVariable "NUGET_PACKAGES" with
                            | null
                            | "" ->
                                IO.Path.Combine(
                                    Environment.GetFolderPath Environment.SpecialFolder.UserProfile,
                                    ".nuget",
                                    "packages"
                                )
                            | p -> p

                        let pkg = IO.Path.Combine(packages, "skiasharp.nativeassets.linux.nodependencies")

                        if IO.Directory.Exists pkg then
                            for v in IO.Directory.GetDirectories pkg do
                                yield IO.Path.Combine(v, "runtimes", "linux-x64", "native")
                    ]

                Runtime.InteropServices.NativeLibrary.SetDllImportResolver(
                    typeof<SKBitmap>.Assembly,
                    fun name asm path ->
                        let mutable handle = IntPtr.Zero

                        if Runtime.InteropServices.NativeLibrary.TryLoad(name, asm, path, &handle) then
                            handle
                        else
                            dirs
                            |> List.map (fun d -> IO.Path.Combine(d, name + ".so"))
                            |> List.tryFind IO.File.Exists
                            |> Option.map Runtime.InteropServices.NativeLibrary.Load
                            |> Option.defaultValue IntPtr.Zero
                )
             with :? InvalidOperationException ->
                 // the host set its own resolver for SkiaSharp first: leave it to that one
                 ())

    /// Makes sure libSkiaSharp.so can be found (see `nativeResolver`); idempotent.
    let ensureNative () = nativeResolver.Force()

    /// RGB bytes of an `Rgba8888` bitmap.
    let rgbOf (bitmap: SKBitmap) =
        let w, h = bitmap.Width, bitmap.Height
        let rgba = bitmap.Bytes
        let out = Array.zeroCreate<byte>(w * h * 3)

        for i in 0 .. w * h - 1 do
            out[3 * i] <- rgba[4 * i]
            out[3 * i + 1] <- rgba[4 * i + 1]
            out[3 * i + 2] <- rgba[4 * i + 2]

        out

    /// PNG bytes of `width` x `height` RGB `pixels`.
    let encodePng (width: int) (height: int) (pixels: byte[]) : byte[] =
        ensureNative ()
        let info = SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque)
        use bitmap = new SKBitmap(info)
        let rgba = Array.zeroCreate<byte>(width * height * 4)

        for i in 0 .. width * height - 1 do
            rgba[4 * i] <- pixels[3 * i]
            rgba[4 * i + 1] <- pixels[3 * i + 1]
            rgba[4 * i + 2] <- pixels[3 * i + 2]
            rgba[4 * i + 3] <- 255uy

        Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length)
        use image = SKImage.FromBitmap bitmap
        use data = image.Encode(SKEncodedImageFormat.Png, 100)
        data.ToArray()

/// One rendered frame: `[Height; Width; 3]` uint8 RGB, rows top to bottom (Gymnasium's
/// `rgb_array` layout).
[<AllowNullLiteral>]
type Frame(width: int, height: int, pixels: byte[]) =
    do
        if width <= 0 || height <= 0 then
            invalidArg "width" $"a frame needs a positive size, got {width} x {height}"

        if isNull pixels || pixels.Length <> width * height * 3 then
            invalidArg
                "pixels"
                $"a {width} x {height} RGB frame needs {width * height * 3} bytes, got {(if isNull pixels then 0 else pixels.Length)}"

    /// Width in pixels.
    member _.Width = width
    /// Height in pixels.
    member _.Height = height
    /// RGB bytes, row-major `[Height; Width; 3]`.
    member _.Pixels = pixels

    /// The (r, g, b) of pixel (x, y), y counted from the top. Raises `ArgumentOutOfRangeException`
    /// outside the frame.
    member _.Pixel(x: int, y: int) =
        if x < 0 || x >= width || y < 0 || y >= height then
            raise (ArgumentOutOfRangeException("x", $"pixel ({x}, {y}) is outside the {width} x {height} frame"))

        let i = (y * width + x) * 3
        pixels[i], pixels[i + 1], pixels[i + 2]

    /// The frame as PNG bytes (lossless, 8-bit RGB).
    member _.ToPng() : byte[] = Skia.encodePng width height pixels

    /// Writes the frame as a PNG file at `path` (creating its folder).
    member this.SavePng(path: string) =
        let full = IO.Path.GetFullPath path
        IO.Directory.CreateDirectory(IO.Path.GetDirectoryName full) |> ignore
        IO.File.WriteAllBytes(full, this.ToPng())

/// An environment that draws itself: Gymnasium's `env.render()` in `rgb_array` mode. Every
/// built-in single-form env implements it; a custom env may (the video recorder and
/// `Envs.render` then take its frames).
type IRenderable =
    /// The current state as a frame. Raises `InvalidOperationException` before the first `Reset`.
    abstract Render: unit -> Frame

/// Drawing and encoding frames.
module Render =
    /// The render modes `Envs.makeWith`'s `render_mode` accepts: `rgb_array` for every built-in env
    /// and custom envs that implement `IRenderable`, `ansi` for FrozenLake-v1 only. (`human`, a
    /// window, is not offered: record a video instead.)
    let modes = [ "rgb_array"; "ansi" ]

    let private paintOf (r: byte, g: byte, b: byte) (antialias: bool) =
        new SKPaint(Color = SKColor(r, g, b), IsAntialias = antialias, Style = SKPaintStyle.Fill)

    /// A pygame-style surface of `width` x `height` pixels on white, drawn into a Skia canvas.
    /// `yUp`: classic control's convention (pygame draws with y down, then
    /// `pygame.transform.flip(surf, False, True)` turns it over): pixel row y of the drawing ends
    /// as row `height - 1 - y` of the frame.
    type Surface(width: int, height: int, yUp: bool) =
        do Skia.ensureNative ()

        let bitmap =
            new SKBitmap(SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul))

        let canvas = new SKCanvas(bitmap)
        do canvas.Clear SKColors.White

        /// Device y of a continuous drawing coordinate.
        let dy (y: float) =
            if yUp then float32 height - float32 y else float32 y

        /// Device y of the centre of pixel row y.
        let rowCentre (y: int) =
            if yUp then
                float32 (height - 1 - y) + 0.5f
            else
                float32 y + 0.5f

        member _.Width = width
        member _.Height = height
        member _.Canvas = canvas

        /// gfxdraw `aapolygon` + `filled_polygon` through the points (drawing coordinates): pygame
        /// truncates each vertex to an integer pixel and SDL_gfx fills every scanline from pixel to
        /// pixel inclusive, so the shape is the polygon through those pixel centres grown by half
        /// a pixel all round (here: filled, then stroked 1 px wide, anti-aliased).
        member _.Polygon(points: (float * float) list, colour) =
            use paint = paintOf colour true
            use builder = new SKPathBuilder()

            points
            |> List.iteri (fun i (x, y) ->
                let p = SKPoint(float32 (truncate x) + 0.5f, dy (truncate y) - 0.5f)
                if i = 0 then builder.MoveTo p else builder.LineTo p)

            builder.Close()
            use path = builder.Detach()
            canvas.DrawPath(path, paint)
            paint.Style <- SKPaintStyle.Stroke
            paint.StrokeWidth <- 1.0f
            canvas.DrawPath(path, paint)

        /// gfxdraw `aacircle` + `filled_circle` at integer pixel (x, y), radius r: SDL_gfx fills
        /// the pixels within r of the centre pixel, a disk 2r + 1 pixels across.
        member _.Disk(x: int, y: int, r: int, colour) =
            use paint = paintOf colour true
            canvas.DrawCircle(float32 x + 0.5f, rowCentre y, float32 r + 0.5f, paint)

        /// gfxdraw `hline` (x1..x2 inclusive, row y) and `vline` (column x, y1..y2 inclusive).
        member _.HLine(x1: int, x2: int, y: int, colour) =
            use paint = paintOf colour false
            let top = rowCentre y - 0.5f
            canvas.DrawRect(SKRect(float32 (min x1 x2), top, float32 (max x1 x2 + 1), top + 1.0f), paint)

        member _.VLine(x: int, y1: int, y2: int, colour) =
            use paint = paintOf colour false
            let a, b = rowCentre y1, rowCentre y2
            canvas.DrawRect(SKRect(float32 x, min a b - 0.5f, float32 x + 1.0f, max a b + 0.5f), paint)

        /// `pygame.draw.aalines`: an anti-aliased open polyline one pixel wide.
        member _.Lines(points: (float * float) list, colour) =
            use paint = paintOf colour true
            paint.Style <- SKPaintStyle.Stroke
            paint.StrokeWidth <- 1.0f
            use builder = new SKPathBuilder()

            points
            |> List.iteri (fun i (x, y) ->
                let p = SKPoint(float32 x + 0.5f, dy y - 0.5f)
                if i = 0 then builder.MoveTo p else builder.LineTo p)

            use path = builder.Detach()
            canvas.DrawPath(path, paint)

        /// The finished frame.
        member _.ToFrame() =
            canvas.Flush()
            Frame(width, height, Skia.rgbOf bitmap)

        interface IDisposable with
            member _.Dispose() =
                canvas.Dispose()
                bitmap.Dispose()

    /// pygame's `Vector2(x, y).rotate_rad(a)`: counter-clockwise in drawing coordinates.
    let private rotate (a: float) (x: float, y: float) =
        let c, s = Math.Cos a, Math.Sin a
        x * c - y * s, x * s + y * c

    let private rect l r t b = [ l, b; l, t; r, t; r, b ]

    /// CartPole-v1 (`cartpole.py:249-345`): 600 x 400; `x` the cart position (m), `theta` the
    /// pole angle (rad, 0 upright, positive to the right). Scale 125 px/m (the track's +-2.4 m
    /// fill the width), cart 50 x 30 px black with its top at y = 100, pole 10 px wide and 125 px
    /// long in (202, 152, 101), axle disk (129, 132, 203), track line black.
    let cartPole (x: float) (theta: float) : Frame =
        let width, height = 600, 400
        let scale = float width / (2.0 * 2.4)
        let poleWidth, poleLen = 10.0, scale * (2.0 * 0.5)
        let cartWidth, cartHeight = 50.0, 30.0
        use s = new Surface(width, height, true)
        let cartX = x * scale + float width / 2.0
        let cartY = 100.0
        let axleOffset = cartHeight / 4.0

        s.Polygon(
            rect (-cartWidth / 2.0) (cartWidth / 2.0) (cartHeight / 2.0) (-cartHeight / 2.0)
            |> List.map (fun (px, py) -> px + cartX, py + cartY),
            (0uy, 0uy, 0uy)
        )

        s.Polygon(
            rect (-poleWidth / 2.0) (poleWidth / 2.0) (poleLen - poleWidth / 2.0) (-poleWidth / 2.0)
            |> List.map (rotate -theta >> fun (px, py) -> px + cartX, py + cartY + axleOffset),
            (202uy, 152uy, 101uy)
        )

        s.Disk(int cartX, int (cartY + axleOffset), int (poleWidth / 2.0), (129uy, 132uy, 203uy))
        s.HLine(0, width, int cartY, (0uy, 0uy, 0uy))
        s.ToFrame()

    /// Our own drawing of Pendulum's torque arrow (Gymnasium blits `assets/clockwise.png`, a
    /// three-quarter circle with an arrowhead, squashed into a `side` x `side` square centred on the
    /// pivot): a black arc from 12 o'clock round to about 3 o'clock, clockwise for a negative
    /// torque, mirrored (counter-clockwise) for a positive one. Device coordinates (y down).
    let private torqueArrow (canvas: SKCanvas) (cx: float32) (cy: float32) (side: int) (counterClockwise: bool) =
        if side >= 2 then
            let r = float32 side * 0.47f
            let stroke = max 1.0f (float32 side * 0.028f)

            use paint =
                new SKPaint(Color = SKColors.Black, IsAntialias = true, Style = SKPaintStyle.Stroke)

            paint.StrokeWidth <- stroke
            let oval = SKRect(cx - r, cy - r, cx + r, cy + r)
            let sign = if counterClockwise then -1.0f else 1.0f
            // Skia's angles are clockwise from 3 o'clock; start at 12 o'clock (-90 degrees)
            let sweep = 250.0f
            use arcBuilder = new SKPathBuilder()
            arcBuilder.AddArc(oval, -90.0f, sign * sweep)
            use arc = arcBuilder.Detach()
            canvas.DrawPath(arc, paint)
            let endAngle = float (-90.0f + sign * sweep) * Math.PI / 180.0

            let ex, ey =
                cx + r * float32 (Math.Cos endAngle), cy + r * float32 (Math.Sin endAngle)
            // the tangent of travel at the arc's end
            let tx, ty = -float32(Math.Sin endAngle) * sign, float32 (Math.Cos endAngle) * sign

            let head = max 3.0f (float32 side * 0.14f)
            let nx, ny = -ty, tx

            use fill =
                new SKPaint(Color = SKColors.Black, IsAntialias = true, Style = SKPaintStyle.Fill)

            use triBuilder = new SKPathBuilder()
            triBuilder.MoveTo(ex + tx * head, ey + ty * head)
            triBuilder.LineTo(ex - tx * head * 0.3f + nx * head * 0.55f, ey - ty * head * 0.3f + ny * head * 0.55f)
            triBuilder.LineTo(ex - tx * head * 0.3f - nx * head * 0.55f, ey - ty * head * 0.3f - ny * head * 0.55f)
            triBuilder.Close()
            use tri = triBuilder.Detach()
            canvas.DrawPath(tri, fill)

    /// Pendulum-v1 (`pendulum.py:181-268`): 500 x 500; `theta` (rad, 0 upright, counter-clockwise
    /// positive) and the last clipped torque `lastU` (N m; None after `Reset`, drawn as no
    /// arrow). Scale 500/4.4 px per m, rod 1 m long and 0.2 m wide in (204, 77, 77) with round
    /// ends, pivot at the centre, torque arrow `scale |u| / 2` px across, black axle.
    let pendulum (theta: float) (lastU: float option) : Frame =
        let dim = 500
        let scale = float dim / (2.2 * 2.0)
        let offset = dim / 2
        let rodLength, rodWidth = scale, 0.2 * scale
        let red = (204uy, 77uy, 77uy)
        use s = new Surface(dim, dim, true)

        s.Polygon(
            rect 0.0 rodLength (rodWidth / 2.0) (-rodWidth / 2.0)
            |> List.map (
                rotate (theta + Math.PI / 2.0)
                >> fun (x, y) -> x + float offset, y + float offset
            ),
            red
        )

        s.Disk(offset, offset, int (rodWidth / 2.0), red)
        let ex, ey = rotate (theta + Math.PI / 2.0) (rodLength, 0.0)
        s.Disk(int (ex + float offset), int (ey + float offset), int (rodWidth / 2.0), red)

        match lastU with
        | Some u ->
            let side = int (scale * abs u / 2.0)
            // centred on the pivot: pygame blits at offset - side/2 (integer division)
            let left = float32 (offset - side / 2)
            let top = float32 (dim - (offset - side / 2) - side)
            torqueArrow s.Canvas (left + float32 side / 2.0f) (top + float32 side / 2.0f) side (u > 0.0)
        | None -> ()

        s.Disk(offset, offset, int (0.05 * scale), (0uy, 0uy, 0uy))
        s.ToFrame()

    /// The hill of MountainCar: `sin(3 x) 0.45 + 0.55` (`mountain_car.py:172-173`).
    let private hill (x: float) = Math.Sin(3.0 * x) * 0.45 + 0.55

    /// MountainCar-v0 and MountainCarContinuous-v0 (`mountain_car.py:175-275`,
    /// `continuous_mountain_car.py`): 600 x 400; `position` (m, in [-1.2, 0.6]) and the flag at
    /// `goalPosition` (0.5 for v0, 0.45 for the continuous env). Scale 600/1.8 px per m, the hill
    /// as 100 anti-aliased segments, a black 40 x 20 px car 10 px above the track tilted by
    /// `cos(3 position)`, grey wheels, and a 50 px flag pole with a (204, 204, 0) pennant.
    let mountainCar (goalPosition: float) (position: float) : Frame =
        let width, height = 600, 400
        let minPos, maxPos = -1.2, 0.6
        let scale = float width / (maxPos - minPos)
        let carWidth, carHeight = 40.0, 20.0
        use s = new Surface(width, height, true)

        let track =
            [
                for i in 0..99 ->
                    let x = minPos + (maxPos - minPos) * float i / 99.0
                    (x - minPos) * scale, hill x * scale
            ]

        s.Lines(track, (0uy, 0uy, 0uy))
        let clearance = 10.0
        let tilt = Math.Cos(3.0 * position)
        let baseX, baseY = (position - minPos) * scale, clearance + hill position * scale

        s.Polygon(
            rect (-carWidth / 2.0) (carWidth / 2.0) carHeight 0.0
            |> List.map (rotate tilt >> fun (x, y) -> x + baseX, y + baseY),
            (0uy, 0uy, 0uy)
        )

        for c in [ carWidth / 4.0, 0.0; -carWidth / 4.0, 0.0 ] do
            let wx, wy = rotate tilt c
            s.Disk(int (wx + baseX), int (wy + baseY), int (carHeight / 2.5), (128uy, 128uy, 128uy))

        let flagX = int ((goalPosition - minPos) * scale)
        let flagY1 = int (hill goalPosition * scale)
        let flagY2 = flagY1 + 50
        s.VLine(flagX, flagY1, flagY2, (0uy, 0uy, 0uy))

        s.Polygon(
            [
                float flagX, float flagY2
                float flagX, float (flagY2 - 10)
                float (flagX + 25), float (flagY2 - 5)
            ],
            (204uy, 204uy, 0uy)
        )

        s.ToFrame()

    /// Acrobot-v1 (`acrobot.py:293-365`): 500 x 500; joint angles `theta1`, `theta2` (rad; 0 hangs
    /// straight down). Scale 500/4.4 px per m, a black reference line 1 m above the pivot, links
    /// 1 m long and 0.2 m wide in (0, 204, 204), joints as (204, 204, 0) disks.
    let acrobot (theta1: float) (theta2: float) : Frame =
        let dim = 500
        let bound = 1.0 + 1.0 + 0.2
        let scale = float dim / (bound * 2.0)
        let offset = float dim / 2.0
        use s = new Surface(dim, dim, true)
        // pygame.draw.line (width 1, not anti-aliased) at y = int(scale + offset)
        s.HLine(int (-2.2 * scale + offset), int (2.2 * scale + offset), int (1.0 * scale + offset), (0uy, 0uy, 0uy))
        let p1 = Math.Sin theta1 * scale, -Math.Cos theta1 * scale

        let links =
            [ (0.0, 0.0), theta1 - Math.PI / 2.0; p1, theta1 + theta2 - Math.PI / 2.0 ]

        for (x, y), th in links do
            let x, y = x + offset, y + offset

            s.Polygon(
                rect 0.0 scale (0.1 * scale) (-0.1 * scale)
                |> List.map (rotate th >> fun (px, py) -> px + x, py + y),
                (0uy, 204uy, 204uy)
            )

            s.Disk(int x, int y, int (0.1 * scale), (204uy, 204uy, 0uy))

        s.ToFrame()

    /// The size of a FrozenLake frame: `min(64 ncol, 512)` x `min(64 nrow, 512)` pixels, cells
    /// `width / ncol` x `height / nrow` (`frozen_lake.py:310-314`).
    let frozenLakeSize (nrow: int) (ncol: int) =
        let w, h = min (64 * ncol) 512, min (64 * nrow) 512
        w, h, w / ncol, h / nrow

    let private ice = (214uy, 232uy, 245uy)

    /// Our own tiles and elf for FrozenLake (Gymnasium's are pixel-art images by other artists,
    /// not ours to copy): ice, a hole, a cracked hole (the agent fell in), the goal's gift, the
    /// start's stool and the elf facing `direction` (0 left, 1 down, 2 right, 3 up).
    let private tile (canvas: SKCanvas) (x: float32) (y: float32) (w: float32) (h: float32) (kind: char) =
        use fill = new SKPaint(IsAntialias = true, Style = SKPaintStyle.Fill)
        let (r, g, b) = ice
        fill.Color <- SKColor(r, g, b)
        canvas.DrawRect(SKRect(x, y, x + w, y + h), fill)
        // a few lighter streaks of wind-polished ice
        fill.Color <- SKColor(236uy, 244uy, 250uy)

        for k in 0..2 do
            let yy = y + h * (0.22f + 0.28f * float32 k)

            canvas.DrawRect(
                SKRect(x + w * (0.12f + 0.1f * float32 k), yy, x + w * (0.55f + 0.1f * float32 k), yy + h * 0.05f),
                fill
            )

        match kind with
        | 'H'
        | 'X' ->
            fill.Color <- SKColor(62uy, 150uy, 214uy)
            canvas.DrawOval(SKRect(x + w * 0.08f, y + h * 0.12f, x + w * 0.92f, y + h * 0.9f), fill)
            fill.Color <- SKColor(28uy, 96uy, 170uy)
            canvas.DrawOval(SKRect(x + w * 0.2f, y + h * 0.25f, x + w * 0.8f, y + h * 0.78f), fill)

            if kind = 'X' then
                use crack =
                    new SKPaint(Color = SKColors.White, IsAntialias = true, Style = SKPaintStyle.Stroke)

                crack.StrokeWidth <- max 1.0f (w * 0.04f)
                canvas.DrawLine(x + w * 0.3f, y + h * 0.3f, x + w * 0.7f, y + h * 0.72f, crack)
                canvas.DrawLine(x + w * 0.7f, y + h * 0.3f, x + w * 0.3f, y + h * 0.72f, crack)
        | 'G' ->
            fill.Color <- SKColor(176uy, 92uy, 40uy)
            canvas.DrawRect(SKRect(x + w * 0.22f, y + h * 0.38f, x + w * 0.78f, y + h * 0.86f), fill)
            fill.Color <- SKColor(240uy, 190uy, 60uy)
            canvas.DrawRect(SKRect(x + w * 0.46f, y + h * 0.38f, x + w * 0.54f, y + h * 0.86f), fill)
            canvas.DrawRect(SKRect(x + w * 0.18f, y + h * 0.3f, x + w * 0.82f, y + h * 0.42f), fill)
        | 'S' ->
            fill.Color <- SKColor(120uy, 70uy, 60uy)
            canvas.DrawRect(SKRect(x + w * 0.3f, y + h * 0.28f, x + w * 0.6f, y + h * 0.42f), fill)
            canvas.DrawRect(SKRect(x + w * 0.32f, y + h * 0.42f, x + w * 0.37f, y + h * 0.6f), fill)
            canvas.DrawRect(SKRect(x + w * 0.53f, y + h * 0.42f, x + w * 0.58f, y + h * 0.6f), fill)
        | _ -> ()

    let private elf (canvas: SKCanvas) (x: float32) (y: float32) (w: float32) (h: float32) (direction: int) =
        use fill = new SKPaint(IsAntialias = true, Style = SKPaintStyle.Fill)
        // body and hat
        fill.Color <- SKColor(46uy, 125uy, 50uy)
        canvas.DrawRect(SKRect(x + w * 0.34f, y + h * 0.48f, x + w * 0.66f, y + h * 0.8f), fill)
        fill.Color <- SKColor(200uy, 40uy, 40uy)
        use hatBuilder = new SKPathBuilder()
        hatBuilder.MoveTo(x + w * 0.32f, y + h * 0.3f)
        hatBuilder.LineTo(x + w * 0.68f, y + h * 0.3f)
        hatBuilder.LineTo(x + w * 0.5f, y + h * 0.1f)
        hatBuilder.Close()
        use hat = hatBuilder.Detach()
        canvas.DrawPath(hat, fill)
        // face
        fill.Color <- SKColor(240uy, 200uy, 160uy)
        canvas.DrawCircle(x + w * 0.5f, y + h * 0.39f, w * 0.11f, fill)
        // feet
        fill.Color <- SKColor(90uy, 50uy, 30uy)
        canvas.DrawRect(SKRect(x + w * 0.36f, y + h * 0.8f, x + w * 0.46f, y + h * 0.88f), fill)
        canvas.DrawRect(SKRect(x + w * 0.54f, y + h * 0.8f, x + w * 0.64f, y + h * 0.88f), fill)
        // where it looks: eyes on the side it faces (none from behind)
        fill.Color <- SKColors.Black

        let eye (ex: float32) =
            canvas.DrawCircle(x + w * ex, y + h * 0.38f, w * 0.025f, fill)

        match direction with
        | 0 -> eye 0.44f
        | 2 -> eye 0.56f
        | 3 -> ()
        | _ ->
            eye 0.46f
            eye 0.54f

    /// FrozenLake-v1 (`frozen_lake.py:365-460`): the map `desc` (rows of S, F, H, G), the agent's
    /// tile `s` (row-major) and the last action (0 left, 1 down, 2 right, 3 up; None after `Reset`,
    /// drawn facing down). Frame `frozenLakeSize`: 64 px cells (smaller past 8 columns or rows),
    /// ice everywhere, holes, the goal and the start stool, every cell outlined in (180, 200, 230),
    /// then the elf, or a cracked hole when the agent is in a hole. No y flip. Raises
    /// `ArgumentException` for an empty or ragged map or `s` outside it.
    let frozenLake (desc: string[]) (s: int) (lastAction: int option) : Frame =
        if
            isNull desc
            || desc.Length = 0
            || desc |> Array.exists (fun r -> isNull r || r.Length <> desc[0].Length)
        then
            invalidArg "desc" "FrozenLake-v1: the map must be non-empty rows of equal length"

        let nrow, ncol = desc.Length, desc[0].Length

        if s < 0 || s >= nrow * ncol then
            invalidArg "s" $"FrozenLake-v1: state {s} is outside 0..{nrow * ncol - 1}"

        let width, height, cw, ch = frozenLakeSize nrow ncol
        use surface = new Surface(width, height, false)
        let canvas = surface.Canvas

        use grid =
            new SKPaint(Color = SKColor(180uy, 200uy, 230uy), IsAntialias = false, Style = SKPaintStyle.Stroke)

        grid.StrokeWidth <- 1.0f

        for row in 0 .. nrow - 1 do
            for col in 0 .. ncol - 1 do
                let x, y = float32 (col * cw), float32 (row * ch)
                tile canvas x y (float32 cw) (float32 ch) (if desc[row][col] = 'F' then ' ' else desc[row][col])
                // pygame.draw.rect(..., width 1): the outline's pixels are the rect's border pixels
                canvas.DrawRect(SKRect(x + 0.5f, y + 0.5f, x + float32 cw - 0.5f, y + float32 ch - 0.5f), grid)

        let row, col = s / ncol, s % ncol
        let x, y = float32 (col * cw), float32 (row * ch)

        if desc[row][col] = 'H' then
            tile canvas x y (float32 cw) (float32 ch) 'X'
            canvas.DrawRect(SKRect(x + 0.5f, y + 0.5f, x + float32 cw - 0.5f, y + float32 ch - 0.5f), grid)
        else
            elf canvas x y (float32 cw) (float32 ch) (defaultArg lastAction 1)

        surface.ToFrame()

    /// FrozenLake's `render_mode="ansi"` text (`frozen_lake.py:471-485`): a first line
    /// `"  (Left)"`/`"  (Down)"`/`"  (Right)"`/`"  (Up)"` for the last action (empty after
    /// `Reset`), then the map with the agent's tile on a red background (`ESC[41m` .. `ESC[0m`,
    /// `gymnasium/utils/colorize.py`), every line ending in a newline.
    let frozenLakeAnsi (desc: string[]) (s: int) (lastAction: int option) : string =
        let ncol = desc[0].Length
        let row, col = s / ncol, s % ncol
        let sb = Text.StringBuilder()

        match lastAction with
        | Some a ->
            sb.Append("  (").Append([| "Left"; "Down"; "Right"; "Up" |][a]).Append(")\n")
            |> ignore
        | None -> sb.Append('\n') |> ignore

        desc
        |> Array.iteri (fun r line ->
            if r = row then
                sb
                    .Append(line.Substring(0, col))
                    .Append("\u001b[41m")
                    .Append(line[col])
                    .Append("\u001b[0m")
                    .Append(line.Substring(col + 1))
                |> ignore
            else
                sb.Append line |> ignore

            sb.Append('\n') |> ignore)

        sb.ToString()

    /// The frame as PNG bytes (lossless, 8-bit RGB).
    let toPng (frame: Frame) : byte[] = frame.ToPng()

    /// A frame decoded from PNG (or any image Skia reads). Raises `FormatException` for bytes that
    /// are not an image.
    let ofPng (bytes: byte[]) : Frame =
        Skia.ensureNative ()

        use decoded =
            try
                SKBitmap.Decode bytes
            with :? ArgumentException ->
                null

        if isNull decoded then
            raise (FormatException "not an image Skia can decode (PNG, JPEG, WebP, ...)")

        use rgba = decoded.Copy SKColorType.Rgba8888

        Frame(rgba.Width, rgba.Height, Skia.rgbOf rgba)
