<?xml version="1.0" encoding="UTF-8"?>
<!-- Shows an RSS 2.0 or Atom 1.0 feed of beatfeeds as a readable page when a browser opens it.
     Feed readers ignore the stylesheet and read the feed itself.
     Every text is written with output escaping on (never disable-output-escaping): markup in
     an entry shows as its characters. RSS texts are HTML-escaped in the feed, so the template
     "rss-text" decodes &amp; &lt; &gt; once, as a reader does, before they are escaped again. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    exclude-result-prefixes="atom">
  <xsl:output method="html" encoding="UTF-8" indent="yes"
      doctype-system="about:legacy-compat"/>

  <xsl:template match="/">
    <xsl:variable name="title">
      <xsl:call-template name="text">
        <xsl:with-param name="node" select="rss/channel/title | atom:feed/atom:title"/>
      </xsl:call-template>
    </xsl:variable>
    <xsl:variable name="self" select="(rss/channel/atom:link[@rel='self'] | atom:feed/atom:link[@rel='self'])[1]/@href"/>
    <xsl:variable name="page" select="(rss/channel/link | atom:feed/atom:link[@rel='alternate']/@href)[1]"/>
    <html lang="en">
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="$title"/> (feed)</title>
        <style>
          body { font: 16px/1.5 system-ui, sans-serif; color: #1b1f24; margin: 0 auto; max-width: 60rem; padding: 0 1rem 2rem; }
          a { color: #0b4f8a; }
          a:focus { outline: 3px solid #f2b600; outline-offset: 2px; }
          .about { background: #eef4fb; padding: .75rem 1rem; border-radius: 6px; }
          .emergency { background: #fde8e8; color: #7d1414; padding: .5rem 1rem; border-radius: 4px; }
          code { background: #f3f4f6; padding: .1rem .3rem; word-break: break-all; }
          ul { list-style: none; padding: 0; }
          li { padding: .5rem 0; border-bottom: 1px solid #d0d7de; }
          .muted { color: #4a5561; }
        </style>
      </head>
      <body>
        <main>
          <h1><xsl:value-of select="$title"/></h1>
          <p class="about">This is a <strong>news feed</strong>. To follow it, copy its address
            into a feed reader (for example NetNewsWire, Feedly, Thunderbird or newsboat):
            <code><xsl:value-of select="$self"/></code></p>
          <p class="emergency">This feed is not monitored. In an emergency call 911.</p>
          <p><xsl:call-template name="text">
            <xsl:with-param name="node" select="rss/channel/description | atom:feed/atom:subtitle"/>
          </xsl:call-template></p>
          <p><a href="{$page}">Open the page of this area</a></p>
          <h2>Latest entries</h2>
          <ul>
            <xsl:for-each select="rss/channel/item">
              <li>
                <a href="{link}"><xsl:call-template name="rss-text">
                  <xsl:with-param name="text" select="string(title)"/>
                </xsl:call-template></a>
                <div class="muted"><xsl:value-of select="category"/></div>
              </li>
            </xsl:for-each>
            <xsl:for-each select="atom:feed/atom:entry">
              <li>
                <a href="{atom:link/@href}"><xsl:value-of select="atom:title"/></a>
                <div class="muted"><xsl:value-of select="atom:category/@label"/></div>
              </li>
            </xsl:for-each>
          </ul>
        </main>
      </body>
    </html>
  </xsl:template>

  <!-- The text of an RSS or Atom element as a reader shows it. -->
  <xsl:template name="text">
    <xsl:param name="node"/>
    <xsl:choose>
      <xsl:when test="/rss">
        <xsl:call-template name="rss-text">
          <xsl:with-param name="text" select="string($node)"/>
        </xsl:call-template>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$node"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <!-- Decode the three entities of HTML-escaped RSS text, left to right in one pass (so
       "&amp;lt;" gives "&lt;", not "<"); the result is written escaped. -->
  <xsl:template name="rss-text">
    <xsl:param name="text"/>
    <xsl:choose>
      <xsl:when test="contains($text, '&amp;')">
        <xsl:value-of select="substring-before($text, '&amp;')"/>
        <xsl:variable name="rest" select="substring-after($text, '&amp;')"/>
        <xsl:variable name="skip">
          <xsl:choose>
            <xsl:when test="starts-with($rest, 'amp;')">4</xsl:when>
            <xsl:when test="starts-with($rest, 'lt;') or starts-with($rest, 'gt;')">3</xsl:when>
            <xsl:otherwise>0</xsl:otherwise>
          </xsl:choose>
        </xsl:variable>
        <xsl:choose>
          <xsl:when test="starts-with($rest, 'lt;')"><xsl:text>&lt;</xsl:text></xsl:when>
          <xsl:when test="starts-with($rest, 'gt;')"><xsl:text>&gt;</xsl:text></xsl:when>
          <xsl:otherwise><xsl:text>&amp;</xsl:text></xsl:otherwise>
        </xsl:choose>
        <xsl:call-template name="rss-text">
          <xsl:with-param name="text" select="substring($rest, $skip + 1)"/>
        </xsl:call-template>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$text"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>
</xsl:stylesheet>
