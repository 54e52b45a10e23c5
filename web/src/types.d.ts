// Module shapes esbuild gives non-TypeScript imports: images become their bundled URL, style
// sheets are bundled into the page's CSS file.
declare module '*.png' {
  const url: string;
  export default url;
}
declare module '*.css';
